"""What makes an update, how alerts read, and who gets them. Pure parts plus the SQLite outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import NotifyConfig, NotifyTarget
from aggregator.models import Advisory, Event, EventMatch, Match, Product, SourceKind, WatchedDevice
from aggregator.notify import describe_changes, material_summary, queue_alerts, render
from aggregator.store import Store

WHEN = datetime(2019, 6, 27, tzinfo=UTC)
DEVICE = WatchedDevice("My pump", "Medtronic", ("Paradigm Revel 523",), "2.5A")
PRODUCT = Product("Medtronic", "MiniMed Paradigm 523/723 pumps", "<= 2.4A", "known_affected")


def event_match(affected: bool | None = False, **changes: Any) -> EventMatch:
    fields: dict[str, Any] = {
        "source": "csaf",
        "kind": SourceKind.CSAF,
        "entry_id": "ICSMA-19-178-01",
        "advisory_id": "ICSMA-19-178-01",
        "title": "Medtronic MiniMed 508 and Paradigm Series Insulin Pumps",
        "url": "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-19-178-01",
        "published": WHEN,
        "cves": ("CVE-2019-10964",),
        "products": (PRODUCT,),
        "revision": "Initial",
        "cvss_score": 7.1,
        "severity": "HIGH",
        "remediations": ("vendor_fix: Talk to your healthcare provider about a newer pump.",),
    }
    fields.update(changes)
    adv = Advisory(**fields)
    products = fields["products"]
    match = Match(adv, DEVICE, affected, "why", products)
    return EventMatch(Event("ICSMA-19-178-01", adv, (adv,)), DEVICE, affected, "why", (match,))


BASE = material_summary(event_match())


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (event_match(), []),
        (event_match(title="Medtronic MiniMed 508 and Paradigm Series Insulin Pumps (re-published)"), []),
        (event_match(url="https://www.us-cert.gov/ics/advisories/icsma-19-178-01"), []),
        (event_match(revision="Update A"), ["the advisory was revised (Initial -> Update A)"]),
        (event_match(True), ["the verdict for your device changed"]),
        (event_match(cves=("CVE-2019-10964", "CVE-2019-99999")), ["new CVEs: CVE-2019-99999"]),
        (event_match(cvss_score=8.1), ["severity changed: CVSS 7.1 -> 8.1"]),
        (
            event_match(products=(Product("Medtronic", PRODUCT.name, "<= 2.6A", "known_affected"),)),
            ["affected products or versions changed"],
        ),
        (event_match(remediations=("vendor_fix: Update to 2.8A.",)), ["remediation advice changed"]),
    ],
)
def test_what_counts_as_an_update(changed: EventMatch, expected: list[str]) -> None:
    changes = describe_changes(BASE, material_summary(changed))
    assert len(changes) == len(expected)
    for got, want in zip(changes, expected, strict=True):
        assert got.startswith(want), got


def test_a_second_source_adding_details_is_not_news() -> None:
    bare = material_summary(event_match(None, products=(), remediations=()))
    assert describe_changes(bare, material_summary(event_match(None))) == []


def test_alert_says_what_why_and_what_to_do() -> None:
    subject, body = render(event_match(False), "new")
    assert subject.startswith('ICSMA-19-178-01 lists, but not at your version, "My pump"')
    assert "Is your device affected? no: your version is outside the affected range" in body
    assert "Link: https://www.cisa.gov/news-events/ics-medical-advisories/icsma-19-178-01" in body
    assert "MiniMed Paradigm 523/723 pumps: <= 2.4A" in body
    assert "CVE-2019-10964" in body and "CVSS 7.1 HIGH" in body
    assert "What the manufacturer says to do, as published:" in body
    assert "Do not stop a therapy on your own." in body
    update_subject, update_body = render(
        event_match(True), "update", ["the advisory was revised (Initial -> Update A)"]
    )
    assert update_subject.startswith('UPDATE: ICSMA-19-178-01 affects "My pump"')
    assert "What changed:\n  - the advisory was revised (Initial -> Update A)" in update_body


@pytest.mark.parametrize(("skip", "queued"), [(False, 1), (True, 0)])
def test_skip_unaffected(tmp_path: Path, skip: bool, queued: int) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    notify = NotifyConfig((NotifyTarget("json://127.0.0.1:9", "json://127.0.0.1:9"),), skip_unaffected=skip)
    with store.transaction():
        assert queue_alerts(store, [event_match(False)], notify) == queued
        assert queue_alerts(store, [event_match(False)], notify) == 0, "never twice"
    # When a revision brings the device into range, the alert comes even with skip_unaffected.
    with store.transaction():
        assert queue_alerts(store, [event_match(True, revision="Update A")], notify) == 1
    kinds = [a["kind"] for a in store.alert_report()]
    assert kinds == (["new", "update"] if not skip else ["update"])
