"""Tests for aggregator.sources.csaf.

Fixtures in tests/fixtures/csaf/ are byte copies of the shared corpus (/work/shared/corpus):
- icsma-*.json: CISA CSAF 2.0 advisories from cisagov/CSAF `csaf_files/OT/white/<year>/`
  (commit 6960219f…, plus icsma-25-030-01.json from commit da6b300b…), corpus folder cisa-csaf-icsma/;
- rhsa-2021_5186.json, rhsa-2022_0011.json (Red Hat) and bsi-2022-0001.json (BSI): OASIS CSAF 2.0
  examples from oasis-tcs/csaf `csaf_2.0/examples/csaf/` (commit 27af37f5…),
  corpus folder oasis-csaf-examples/.
The whole-corpus test reads the shared corpus itself and is skipped when it is not there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.models import Advisory, Product, SourceKind
from aggregator.sources.csaf import is_csaf, parse_csaf

FIXTURES = Path(__file__).parent / "fixtures" / "csaf"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIRS = (
    "cisa-csaf-icsma",
    "cisa-csaf-icsa-sample",
    "cisa-csaf-icsa-healthcare-borderline",
    "oasis-csaf-examples",
)


def load(name: str) -> Advisory:
    return parse_csaf((FIXTURES / name).read_bytes(), source="cisa-csaf")


def product(advisory: Advisory, name: str) -> Product:
    matches = [p for p in advisory.products if p.name == name]
    assert len(matches) == 1, [p.name for p in advisory.products]
    return matches[0]


def minimal_csaf(**overrides: Any) -> dict[str, Any]:
    """A small valid CSAF document for shapes the corpus does not have."""
    doc: dict[str, Any] = {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "title": "Acme Pump",
            "tracking": {
                "id": " icsma-99-001-01 ",
                "initial_release_date": "2024-01-02T00:00:00Z",
                "current_release_date": "2024-01-02T00:00:00Z",
                "version": "1",
            },
        },
        "product_tree": {},
        "vulnerabilities": [],
    }
    doc.update(overrides)
    return doc


def parse_dict(doc: dict[str, Any]) -> Advisory:
    return parse_csaf(json.dumps(doc).encode(), source="test")


# --- ICSMA-19-178-01: Medtronic MiniMed 508 / Paradigm -------------------------------------


def test_minimed_identity_and_dates() -> None:
    adv = load("icsma-19-178-01.json")
    assert adv.kind is SourceKind.CSAF
    assert adv.source == "cisa-csaf"
    assert adv.entry_id == adv.advisory_id == "ICSMA-19-178-01"
    assert adv.key == "cisa-csaf:ICSMA-19-178-01"
    assert adv.title == "Medtronic MiniMed 508 and Paradigm Series Insulin Pumps"
    assert adv.url == "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-19-178-01"
    assert adv.published == datetime(2019, 6, 27, tzinfo=UTC)
    assert adv.updated == datetime(2019, 6, 27, tzinfo=UTC)
    assert adv.release_dates == (datetime(2019, 6, 27, tzinfo=UTC),)
    assert adv.revision == "Initial"
    assert adv.manufacturer == "Medtronic"
    assert ("tracking_version", "1") in adv.extra
    assert ("sectors", "Healthcare and Public Health") in adv.extra


def test_minimed_vulnerability_facts() -> None:
    adv = load("icsma-19-178-01.json")
    assert adv.cves == ("CVE-2019-10964",)
    assert adv.cwes == ("CWE-284",)
    assert adv.cvss_score == 7.1
    assert adv.severity == "HIGH"
    assert adv.identifiers == {"ICSMA-19-178-01", "CVE-2019-10964"}
    assert adv.summary.startswith("Successful exploitation of this vulnerability")
    assert "wireless RF communication protocol" in adv.summary  # the vulnerability summary note
    assert "Recommended Practices" not in adv.summary
    assert len(adv.summary) <= 2000
    assert adv.remediations[0].startswith("vendor_fix: Medtronic recommends U.S. patients")
    assert "vendor_fix: https://www.medtronic.com/security" in adv.remediations
    assert len(adv.remediations) == len(set(adv.remediations))


def test_minimed_products() -> None:
    adv = load("icsma-19-178-01.json")
    assert len(adv.products) == 11
    assert {p.vendor for p in adv.products} == {"Medtronic"}
    assert {p.status for p in adv.products} == {"known_affected"}
    assert product(adv, "MiniMed Paradigm 523/723 pumps") == Product(
        vendor="Medtronic", name="MiniMed Paradigm 523/723 pumps", version="<= 2.4A", status="known_affected"
    )
    assert product(adv, "MiniMed Paradigm Veo 554/754 pumps").version == "<= 2.6A"
    assert product(adv, "MiniMed Paradigm Veo 554CM and 754CM models only").version == "<= 2.7A"
    assert product(adv, "MiniMed 508 pump").version == "vers:all/*"


# --- other CISA shapes ---------------------------------------------------------------------


def test_model_lists_in_product_version_and_bare_letter_revision() -> None:
    adv = load("icsma-18-219-02.json")
    assert adv.title == "Medtronic MiniMed MMT-500/MMT-503 Remote Controllers (Update A)"
    # revision_history says just "A"
    assert adv.revision == "Update A"
    assert adv.release_dates == (datetime(2018, 8, 7, tzinfo=UTC), datetime(2021, 10, 5, tzinfo=UTC))
    assert adv.updated == datetime(2021, 10, 5, tzinfo=UTC)
    assert len(adv.products) == 10
    versions = {(p.name, p.version) for p in adv.products}
    assert ("MMT-503 Remote Controller", "MMT-512 / MMT-712 Paradigm x12") in versions
    assert ("MMT-500 Remote Controller", "MMT-508 MiniMed pump") in versions
    assert adv.cves == ("CVE-2018-10634", "CVE-2018-14781")
    assert adv.cvss_score == 5.3
    assert adv.severity == "MEDIUM"


def test_revision_letter_suffix_and_id_prefixed_title() -> None:
    adv = load("icsma-17-009-01a.json")
    assert adv.entry_id == "ICSMA-17-009-01A"
    assert adv.title == "ICSMA-17-009-01A_St. Jude Merlin@home Transmitter Vulnerability (Update A)"
    assert adv.url == "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-17-009-01a"
    assert adv.revision == "Update A"
    assert [p.name for p in adv.products] == [
        "Inductive models EX1100",
        "Inductive models EX1100 with MerlinOnDemand capability",
        "RF models EX1150",
    ]
    assert {p.version for p in adv.products} == {"< 8.2.2"}
    assert adv.manufacturer == "St. Jude Medical"


def test_products_without_a_status_are_still_listed() -> None:
    adv = load("icsma-17-215-01.json")
    assert adv.title == "ICSMA-17-215-01_Siemens Molecular Imaging Vulnerabilities"
    assert len(adv.products) == 4
    # only one of the four products appears in vulnerabilities[].product_status
    assert sorted(p.status for p in adv.products) == ["", "", "", "known_affected"]
    assert adv.cves == ("CVE-2008-4250", "CVE-2017-7269")
    assert adv.severity == "CRITICAL"


def test_title_update_newer_than_revision_history() -> None:
    # revision_history stops at "A" while the title already says "(Update B)"
    adv = load("icsma-21-152-01.json")
    assert adv.title == "Hillrom Medical Device Management (Update B)"
    assert adv.revision == "Update B"


def test_vendor_trailing_space_is_stripped() -> None:
    adv = load("icsma-23-061-01.json")  # vendor branch is "Medtronic "
    assert adv.manufacturer == "Medtronic"
    assert {p.vendor for p in adv.products} == {"Medtronic"}
    assert product(adv, "Micro Clinician").version == "A51200"


def test_contec_update_a() -> None:
    adv = load("icsma-25-030-01.json")
    assert adv.revision == "Update A"
    assert adv.published == datetime(2025, 1, 30, 7, tzinfo=UTC)
    assert adv.updated == datetime(2025, 2, 25, 7, tzinfo=UTC)
    assert adv.cves == ("CVE-2024-12248", "CVE-2025-0626", "CVE-2025-0683", "CVE-2025-1204")
    assert adv.cvss_score == 9.8
    assert adv.severity == "CRITICAL"
    assert adv.manufacturer == "Contec Health"
    assert product(adv, "CMS8000 Patient Monitor").version == "vers:all/*"
    assert len(adv.products) == 4


# --- other providers' layouts --------------------------------------------------------------


def test_red_hat_relationships_define_the_affected_products() -> None:
    adv = load("rhsa-2022_0011.json")
    assert adv.entry_id == "RHSA-2022:0011"
    assert adv.url == "https://access.redhat.com/errata/RHSA-2022:0011"
    assert adv.cves == ("CVE-2020-10188",)
    assert len(adv.products) == 25  # 3 platforms + 7 packages + 15 package-on-platform relationships
    fixed = [p for p in adv.products if p.status == "fixed"]
    assert len(fixed) == 15
    rel = product(adv, "telnet-1:0.17-65.el7_6.x86_64 as a component of Red Hat Enterprise Linux Server AUS (v. 7.6)")
    assert rel.vendor == "Red Hat"
    assert rel.version == "telnet-1:0.17-65.el7_6.x86_64"
    assert rel.status == "fixed"
    # no CVSS in the document: the document's aggregate severity stands in
    assert adv.cvss_score is None
    assert adv.severity == "IMPORTANT"


def test_red_hat_product_family_and_mixed_statuses() -> None:
    adv = load("rhsa-2021_5186.json")
    assert len(adv.products) == 7
    platform = product(adv, "Red Hat OpenShift Container Platform 4.6")
    assert platform.vendor == "Red Hat"
    assert platform.status == ""
    statuses = sorted(p.status for p in adv.products if p.status)
    assert statuses == ["fixed", "known_not_affected", "known_not_affected"]


def test_bsi_first_fixed_version() -> None:
    adv = load("bsi-2022-0001.json")
    assert adv.url is None  # its only self reference is missing / the JSON itself
    assert [(p.version, p.status) for p in adv.products][-2:] == [
        ("1.0.0-rc1", "known_affected"),
        ("1.0.0-rc2", "first_fixed"),
    ]
    assert {p.name for p in adv.products} == {"CVRF-CSAF-Converter"}
    assert adv.cvss_score == 6.1
    assert adv.severity == "MEDIUM"


# --- synthetic shapes ----------------------------------------------------------------------


def test_status_preference_across_vulnerabilities() -> None:
    tree = {
        "branches": [
            {
                "category": "vendor",
                "name": "Acme ",
                "branches": [
                    {
                        "category": "product_family",
                        "name": "InfuseCo",
                        "branches": [
                            {
                                "category": "product_name",
                                "name": "Pump 9",
                                "branches": [
                                    {
                                        "category": "product_version_range",
                                        "name": "<= 3.1",
                                        "product": {"name": "Pump 9 <= 3.1", "product_id": "P1"},
                                    },
                                    {
                                        "category": "product_version",
                                        "name": "3.2",
                                        "product": {"name": "Pump 9 3.2", "product_id": "P2"},
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
        "full_product_names": [
            {
                "name": "Acme Gateway",
                "product_id": "P3",
                "product_identification_helper": {"model_numbers": ["GW-1", "GW-2 "]},
            }
        ],
    }
    vulns = [
        {"cve": "cve-2024-0001", "product_status": {"fixed": ["P1", "P2"], "under_investigation": ["P3"]}},
        {"cve": "CVE-2024-0002", "product_status": {"known_affected": ["P1"], "fixed": ["P3"]}},
    ]
    adv = parse_dict(minimal_csaf(product_tree=tree, vulnerabilities=vulns))
    assert adv.entry_id == "ICSMA-99-001-01"
    assert adv.cves == ("CVE-2024-0001", "CVE-2024-0002")
    assert adv.products == (
        Product("Acme", "InfuseCo Pump 9", "<= 3.1", "known_affected"),
        Product("Acme", "InfuseCo Pump 9", "3.2", "fixed"),
        Product("", "Acme Gateway", "", "fixed", ("GW-1", "GW-2")),
    )
    assert adv.manufacturer == "Acme"
    assert adv.url is None
    assert adv.cvss_score is None and adv.severity is None


def test_cvss_v2_is_only_a_fallback_and_highest_v3_wins() -> None:
    vulns = [
        {"scores": [{"cvss_v2": {"baseScore": 10.0}, "cvss_v3": {"baseScore": 6.5}, "products": []}]},
        {"scores": [{"cvss_v3": {"baseScore": 8.1, "baseSeverity": "high"}, "products": []}]},
    ]
    adv = parse_dict(minimal_csaf(vulnerabilities=vulns))
    assert (adv.cvss_score, adv.severity) == (8.1, "HIGH")
    only_v2 = parse_dict(minimal_csaf(vulnerabilities=[{"scores": [{"cvss_v2": {"baseScore": 7.5}}]}]))
    assert (only_v2.cvss_score, only_v2.severity) == (7.5, "HIGH")


def test_revision_falls_back_to_number_and_dates_are_sorted() -> None:
    doc = minimal_csaf()
    doc["document"]["tracking"]["revision_history"] = [
        {"date": "2024-03-01T00:00:00Z", "number": "2"},
        {"date": "2024-01-02T00:00:00Z", "number": "1", "legacy_version": "Initial"},
    ]
    doc["document"]["tracking"]["current_release_date"] = "2024-03-01T00:00:00Z"
    adv = parse_dict(doc)
    assert adv.revision == "2"
    assert adv.release_dates == (datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))


def test_utf8_bom_is_accepted() -> None:
    body = b"\xef\xbb\xbf" + (FIXTURES / "icsma-19-178-01.json").read_bytes()
    assert parse_csaf(body, source="x").entry_id == "ICSMA-19-178-01"


# --- negatives -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"feed": {"entry": []}}',
        b'{"document": {"title": "no csaf_version", "tracking": {"id": "X-1"}}}',
        b'{"document": {"csaf_version": "2.0", "tracking": {"id": "  "}}}',
        b'{"document": {"csaf_version": "2.0", "tracking": []}}',
    ],
)
def test_parse_errors(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_csaf(body, source="x")


def test_is_csaf() -> None:
    assert is_csaf(json.loads((FIXTURES / "icsma-19-178-01.json").read_bytes()))
    assert is_csaf(minimal_csaf())
    assert not is_csaf({"meta": {}, "results": []})  # an openFDA response
    assert not is_csaf({"document": {"csaf_version": "2.0", "tracking": {}}})
    assert not is_csaf({"document": "x"})
    assert not is_csaf([minimal_csaf()])
    assert not is_csaf(None)


def test_malformed_parts_do_not_crash() -> None:
    doc = minimal_csaf(
        product_tree={"branches": [None, "x", {"category": "vendor", "branches": "nope"}]},
        vulnerabilities=[None, {"product_status": ["P1"], "scores": "x", "remediations": [None, {}]}],
    )
    doc["document"]["references"] = "x"
    doc["document"]["tracking"]["revision_history"] = [None, {"date": 5}]
    adv = parse_dict(doc)
    assert adv.products == ()
    assert adv.remediations == ()


# --- the whole recorded corpus -------------------------------------------------------------


def _corpus() -> Path | None:
    for candidate in (PROJECT_ROOT.parent / "shared" / "corpus", Path("/work/shared/corpus")):
        if candidate.is_dir():
            return candidate
    return None


def test_every_corpus_csaf_file_parses() -> None:
    corpus = _corpus()
    if corpus is None:
        pytest.skip("shared corpus not available")
    files = [f for d in CORPUS_DIRS for f in sorted((corpus / d).glob("*.json"))]
    if not files:
        pytest.skip("shared corpus has no CSAF files")
    bodies = [(f, f.read_bytes()) for f in files]
    advisories = [(f, parse_csaf(body, source="corpus")) for f, body in bodies]
    for f, adv in advisories:
        assert adv.products, f.name
        assert adv.entry_id, f.name
        assert adv.published is not None, f.name
    icsma = [a for f, a in advisories if f.parent.name == "cisa-csaf-icsma"]
    assert all(a.entry_id.startswith("ICSMA-") for a in icsma)
    assert all(a.url and a.url.startswith("https://www.cisa.gov/") for a in icsma)
