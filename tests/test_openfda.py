"""Tests for aggregator.sources.openfda.

Fixtures in tests/fixtures/openfda/ come from the shared corpus (/work/shared/corpus):
- device-recall-z-1811-2022.json: byte copy of derived-openfda/device-recall-z-1811-2022.json. It is
  NOT a recording: it is an openFDA device/recall response *rebuilt* around a real recall (Z-1811-2022,
  Tandem t:slim X2), with the meta block of openFDA's real example;
- site-examples-device-recall.json / site-examples-device-enforcement.json: byte copies (renamed) of
  openfda-site-examples/device/{recall,enforcement}/_examples.json, from FDA/open.fda.gov (commit 42bf8813…).
  In the recall file the full API response sits under "anatomy"; the enforcement file has "meta" and one
  "result", which the tests wrap into a response;
- legacy-one-recall.json / legacy-ucm308307.jsonl: byte copies (renamed) of openfda-pipeline-testdata/
  res-tests/{one-recall.json,ucm308307.json} from FDA/openfda (commit 2c152208…): the old scraped
  enforcement-report format with hyphenated keys; ucm308307 is JSON Lines mixing product types.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.models import Product, SourceKind
from aggregator.sources.openfda import (
    is_not_found,
    is_openfda,
    parse_openfda,
    parse_openfda_records,
    total_results,
)

FIXTURES = Path(__file__).parent / "fixtures" / "openfda"
NOT_FOUND = b'{"error": {"code": "NOT_FOUND", "message": "No matches found!"}}'


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def enforcement_response() -> dict[str, Any]:
    example = fixture_json("site-examples-device-enforcement.json")
    return {"meta": example["meta"]["meta"], "results": [example["result"]]}


def test_rebuilt_tandem_recall() -> None:
    body = (FIXTURES / "device-recall-z-1811-2022.json").read_bytes()
    assert is_openfda(json.loads(body))
    assert total_results(json.loads(body)) == 1
    [adv] = parse_openfda(body, source="openfda-recall")
    assert adv.kind is SourceKind.OPENFDA
    assert adv.key == "openfda-recall:Z-1811-2022"
    assert adv.entry_id == adv.advisory_id == "Z-1811-2022"
    assert adv.title.startswith("Tandem Diabetes Care Inc: t:slim X2 insulin pump;")
    assert len(adv.title) <= 200
    assert adv.url is None  # the record has no cfres_id
    assert adv.published == datetime(2022, 5, 24, tzinfo=UTC)
    assert adv.updated == datetime(2022, 10, 5, tzinfo=UTC)
    assert adv.manufacturer == "Tandem Diabetes Care Inc"
    assert adv.summary.startswith("Insulin pumps may have the following issues")
    assert adv.identifiers == {"Z-1811-2022"}
    assert adv.products == (
        Product(
            vendor="Tandem Diabetes Care Inc",
            name="t:slim X2 insulin pump; t:slim X2 insulin pump with Dexcom G5; "
            "t:slim X2 insulin pump with Basal-IQ technology; "
            "t: slim x2 insulin pump with the Control-IQ Technology",
            version="",
            status="known_affected",
        ),
    )
    assert adv.severity is None
    assert ("status", "Open, Classified") in adv.extra
    assert ("quantity", "31,100") in adv.extra


def test_site_example_recall_response() -> None:
    response = fixture_json("site-examples-device-recall.json")["anatomy"]
    assert is_openfda(response)
    assert total_results(response) == 882
    [adv] = parse_openfda_records(response, source="openfda-recall")
    assert adv.entry_id == "Z-0053-2020"
    assert adv.title == "Arrow International Inc: Pediatric Two-Lumen Central Venous Catheterization"
    assert adv.published == datetime(2019, 5, 17, tzinfo=UTC)
    # created 2019-10-07 and terminated 2020-09-24: the latest is the update
    assert adv.updated == datetime(2020, 9, 24, tzinfo=UTC)
    assert adv.severity == "Class II"  # from openfda.device_class "2"
    assert dict(adv.extra) == {
        "event_number": "82984",
        "status": "Terminated",
        "product_code": "FOZ",
        "quantity": "3,143",
    }
    [prod] = adv.products
    # the multi-line description is kept as published
    assert prod.name.startswith(
        "Pediatric Two-Lumen Central Venous Catheterization\n"
        "Kit with Blue FlexTip ARROWg+ard Blue Catheter, REF AK-25502"
    )
    assert prod.vendor == "Arrow International Inc"
    assert "Lidstock contains a labeling error." in adv.summary
    assert "Action: On May 17, 2019, Arrow International issued" in adv.summary
    assert "\r" not in adv.summary
    assert len(adv.summary) <= 2000


def test_site_example_bare_record_with_device_class_three() -> None:
    record = fixture_json("site-examples-device-recall.json")["record"]
    [adv] = parse_openfda_records({"meta": {}, "results": [record]}, source="x")
    assert adv.entry_id == "Z-0359-2013"
    assert adv.severity == "Class III"
    assert adv.products == ()  # the record has no product_description
    assert adv.updated == datetime(2012, 11, 19, tzinfo=UTC)


def test_cfres_id_gives_the_res_page_url() -> None:
    doc = fixture_json("device-recall-z-1811-2022.json")
    doc["results"][0]["cfres_id"] = "194340"
    [adv] = parse_openfda_records(doc, source="x")
    assert adv.url == "https://www.accessdata.fda.gov/scripts/cdrh/cfdocs/cfRES/res.cfm?id=194340"


def test_enforcement_example() -> None:
    response = enforcement_response()
    assert is_openfda(response)
    assert total_results(response) == 1355
    [adv] = parse_openfda_records(response, source="openfda-enforcement")
    # the documentation example carries no recall_number, only the event id
    assert adv.advisory_id is None
    assert adv.entry_id == "EVENT-62561"
    assert adv.title == "Encore Medical, Lp: djo surgical Screw 6.5 mm, Sz 25mm, low profile."
    assert adv.published == datetime(2012, 7, 16, tzinfo=UTC)  # recall_initiation_date YYYYMMDD
    assert adv.updated == datetime(2012, 8, 15, tzinfo=UTC)  # report_date
    assert adv.severity == "Class II"
    assert ("status", "Ongoing") in adv.extra
    assert ("event_number", "62561") in adv.extra
    assert "Code info: Lot 007A1037, Ref 010-55-25." in adv.summary


def test_enforcement_recall_number_is_the_id() -> None:
    response = enforcement_response()
    response["results"][0]["recall_number"] = "z-2001-2012"
    [adv] = parse_openfda_records(response, source="x")
    assert adv.entry_id == adv.advisory_id == "Z-2001-2012"
    assert "Z-2001-2012" in adv.identifiers


def test_legacy_scraped_record() -> None:
    record = fixture_json("legacy-one-recall.json")
    [adv] = parse_openfda_records({"results": [record]}, source="x")
    assert adv.entry_id == "Z-1004-04"  # found in the description: the old format has no id field
    assert adv.manufacturer == "Zimmer Inc. Warsaw, IN"
    assert adv.products[0].name.startswith("M/DN Intramedullary Fixation Humeral Nail.")
    assert adv.summary.startswith("One and possibly more units in the lot")


def test_legacy_mixed_week_keeps_only_numbered_devices() -> None:
    lines = (FIXTURES / "legacy-ucm308307.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert len(records) == 72
    advisories = parse_openfda_records({"results": records}, source="x")
    assert [a.entry_id for a in advisories] == [
        "Z-1707-2012",
        "Z-1773-2012",
        "Z-1783-2012",
        "Z-1791-2012",
        "Z-1792-2012",
        "Z-1793-2012",
        "Z-1794-2012",
    ]
    captiva = advisories[2]
    assert {"Z-1783-2012", "Z-1784-2012", "Z-1785-2012", "Z-1786-2012"} <= captiva.identifiers
    assert captiva.manufacturer == "Captiva Spine, Inc., Jupiter, FL"
    assert advisories[5].manufacturer == "Aesculap Implant Systems, Center Valley, PA"
    assert all(a.published == datetime(2012, 6, 13, tzinfo=UTC) for a in advisories)  # MM/DD/YYYY
    assert all(a.severity == "Class II" for a in advisories)


# --- empty windows, errors, detection ------------------------------------------------------


def test_not_found_is_an_empty_window() -> None:
    assert parse_openfda(NOT_FOUND, source="x") == []
    assert is_not_found(json.loads(NOT_FOUND))
    assert parse_openfda_records(json.loads(NOT_FOUND), source="x") == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": {"code": "BAD_REQUEST", "message": "Invalid date range"}}',
        b'{"error": {"code": "API_KEY_INVALID"}}',
        b'{"error": "x"}',
    ],
)
def test_other_error_bodies_raise(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_openfda(body, source="x")


@pytest.mark.parametrize("body", [b"", b"<html>Access Denied</html>", b"[]", b'{"meta": {}}', b'"x"'])
def test_invalid_bodies_raise(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_openfda(body, source="x")


def test_empty_results_page() -> None:
    body = b'{"meta": {"results": {"skip": 0, "limit": 100, "total": 0}}, "results": []}'
    assert parse_openfda(body, source="x") == []
    assert is_openfda(json.loads(body))


def test_unusable_records_are_skipped() -> None:
    doc = {"meta": {}, "results": [None, "x", {"product_description": "no number anywhere"}]}
    assert parse_openfda_records(doc, source="x") == []


def test_detection_helpers() -> None:
    assert not is_openfda({"results": []})  # no meta
    assert not is_openfda({"meta": {}, "results": [{"term": "FPA", "count": 1}]})  # a count query
    assert not is_openfda([])
    assert not is_openfda({"document": {"csaf_version": "2.0"}})
    assert not is_not_found({"error": {"code": "BAD_REQUEST"}})
    assert not is_not_found(None)
    assert total_results({}) == 0
    assert total_results({"meta": {"results": {"total": "12"}}}) == 12
    assert total_results({"meta": {"results": {"total": None}}}) == 0
