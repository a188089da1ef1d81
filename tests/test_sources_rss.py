"""RSS and Atom from the regulators, normalised to Advisory.

- fda-medical-device-recalls.xml: ../shared/corpus/derived-rss, real FDA recalls rebuilt in the shape of FDA's
  "Medical Device Recalls" RSS feed (no public recording of the feed exists).
- cisa-icsma-*.xml: CISA-shaped RSS rebuilt from the real ICS Advisory Project rows (same folder).
- mhra-drug-device-alerts.atom: built for these tests in the shape of GOV.UK's drug-device-alerts Atom feed
  (a finder feed mixing medicines and devices); its device items retell real events.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aggregator.models import SourceKind
from aggregator.sources import keep_wanted
from aggregator.sources.rss import is_feed, parse_rss
from tests.conftest import fixture_bytes


def test_fda_recalls_feed() -> None:
    items = parse_rss(fixture_bytes("rss", "fda-medical-device-recalls.xml"), source="fda")
    assert len(items) == 8
    assert all(a.kind is SourceKind.RSS and a.advisory_id is None for a in items), "FDA items carry no CISA id"
    pumps = next(
        a for a in items if a.title == "Medtronic Recalls MiniMed Insulin Pumps for Potential Cybersecurity Risks"
    )
    assert pumps.entry_id == pumps.url
    assert pumps.url is not None and pumps.url.startswith("https://www.fda.gov/medical-devices/medical-device-recalls/")
    assert pumps.published == datetime(2019, 6, 27, 14, 0, tzinfo=UTC)
    assert "<" not in pumps.summary, "summary is plain text"


def test_cisa_feed_ids_revisions_and_cves() -> None:
    items = parse_rss(fixture_bytes("rss", "cisa-icsma-all.xml"), source="cisa")
    assert len(items) == 189, "193 items; 4 guids repeat for an update: the latest revision is kept"
    assert next(a for a in items if a.advisory_id == "ICSMA-21-355-01").revision == "Update A"
    by_id: dict[str, list[str]] = {}
    for a in items:
        assert a.advisory_id is not None and a.advisory_id.startswith("ICSMA-")
        by_id.setdefault(a.advisory_id, []).append(a.title)
    carelink = next(a for a in items if a.advisory_id == "ICSMA-25-205-01")
    assert carelink.revision == "Update A"
    assert carelink.manufacturer == "Medtronic"
    assert "CVE-2025-4386" in carelink.cves and "CVE-2025-4386" in carelink.identifiers
    assert carelink.cvss_score == 6.8


def test_mhra_atom_and_keyword_filters() -> None:
    body = fixture_bytes("regulators", "mhra-drug-device-alerts.atom")
    assert is_feed(body)
    items = parse_rss(body, source="mhra")
    assert len(items) == 3
    cyber = items[2]
    assert cyber.advisory_id == "ICSMA-19-178-01", "an advisory id in the title is the item's own"
    assert cyber.url == "https://www.gov.uk/drug-device-alerts/medtronic-minimed-insulin-pumps-cybersecurity"
    assert {"ICSMA-19-178-01", "CVE-2019-10964"} <= cyber.identifiers
    devices = keep_wanted(items, include=("device",), exclude=("medicines recall",))
    assert [a.title.split(":")[0] for a in devices] == ["Field Safety Notice", "Device Safety Information"]


def test_not_feeds_are_recognised() -> None:
    assert not is_feed(b"path,timestamp\ncsaf_files/x.json,2024-01-01\n")
    assert not is_feed(b'{"feed": {"entry": []}}')
    assert is_feed(b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- generated -->\n<rss version="2.0"></rss>')
