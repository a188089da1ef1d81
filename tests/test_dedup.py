"""Folding copies of one event: table-driven, each rule with its negatives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.dedup import fold
from aggregator.match import load_aliases
from aggregator.models import Advisory, Product, SourceKind
from aggregator.sources.files import read_advisory_file
from tests.conftest import FIXTURES

ALIASES = load_aliases()


def adv(
    entry_id: str,
    *,
    advisory_id: str | None = None,
    kind: SourceKind = SourceKind.RSS,
    source: str = "feed",
    title: str = "",
    summary: str = "",
    when: str = "2019-06-27",
    also: tuple[str, ...] = (),
    cves: tuple[str, ...] = (),
    identifiers: tuple[str, ...] = (),
    vendor: str = "",
    products: tuple[str, ...] = (),
) -> Advisory:
    date = datetime.fromisoformat(when).replace(tzinfo=UTC)
    dates = (date, *(datetime.fromisoformat(d).replace(tzinfo=UTC) for d in also))
    return Advisory(
        source=source,
        kind=kind,
        entry_id=entry_id,
        advisory_id=advisory_id,
        title=title,
        url=None,
        published=date,
        summary=summary,
        cves=cves,
        identifiers=frozenset(identifiers) | frozenset(cves),
        release_dates=dates,
        products=tuple(Product(vendor, p, "vers:all/*", "known_affected") for p in products),
        manufacturer=vendor or None,
    )


def groups(advisories: list[Advisory]) -> set[frozenset[str]]:
    return {frozenset(m.key for m in e.members) for e in fold(advisories, ALIASES)}


PUMPS = adv(
    "ICSMA-19-178-01",
    advisory_id="ICSMA-19-178-01",
    kind=SourceKind.CSAF,
    source="csaf",
    vendor="Medtronic",
    title="Medtronic MiniMed 508 and Paradigm Series Insulin Pumps",
    products=("MiniMed 508 pump", "MiniMed Paradigm 522/722 pumps"),
    cves=("CVE-2019-10964",),
)
REMOTES = adv(
    "ICSMA-18-219-02",
    advisory_id="ICSMA-18-219-02",
    kind=SourceKind.CSAF,
    source="csaf",
    vendor="Medtronic",
    when="2018-08-07",
    also=("2021-10-05",),
    title="Medtronic MiniMed MMT-500/MMT-503 Remote Controllers (Update A)",
    products=("MMT-500 Remote Controller", "MMT-503 Remote Controller"),
    cves=("CVE-2018-10634",),
)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        # Same advisory id from two sources, and a revision letter: one event.
        (
            [PUMPS, adv("ICSMA-19-178-01", advisory_id="ICSMA-19-178-01", source="rss")],
            {frozenset({"csaf:ICSMA-19-178-01", "rss:ICSMA-19-178-01"})},
        ),
        (
            [
                adv("a", advisory_id="ICSMA-17-009-01", source="csaf"),
                adv("b", advisory_id="ICSMA-17-009-01A", source="rss"),
            ],
            {frozenset({"csaf:a", "rss:b"})},
        ),
        # Two different advisory ids never merge, not even on a shared CVE.
        (
            [
                adv("x", advisory_id="ICSMA-17-200-01", cves=("CVE-2017-0143",)),
                adv("y", advisory_id="ICSMA-18-100-01", cves=("CVE-2017-0143",)),
            ],
            {frozenset({"feed:x"}), frozenset({"feed:y"})},
        ),
        # An id-less item naming an advisory id joins it.
        (
            [PUMPS, adv("fda", identifiers=("ICSMA-19-178-01",), when="2023-01-01")],
            {frozenset({"csaf:ICSMA-19-178-01", "feed:fda"})},
        ),
        # ... or the one event with a CVE it names; a CVE carried by two events joins neither.
        (
            [PUMPS, adv("nvd", cves=("CVE-2019-10964",), when="2025-05-22")],
            {frozenset({"csaf:ICSMA-19-178-01", "feed:nvd"})},
        ),
        (
            [
                adv("x", advisory_id="ICSMA-17-200-01", cves=("CVE-2017-0143",)),
                adv("y", advisory_id="ICSMA-18-100-01", cves=("CVE-2017-0143",)),
                adv("nvd", cves=("CVE-2017-0143",)),
            ],
            {frozenset({"feed:x"}), frozenset({"feed:y"}), frozenset({"feed:nvd"})},
        ),
        # Fuzzy: same maker, shared model token, date within the window of a revision date.
        (
            [
                PUMPS,
                REMOTES,
                adv(
                    "fda-remotes",
                    title="Medtronic Recalls Remote Controllers Used with Paradigm and 508 MiniMed Insulin Pumps",
                    summary="MMT-500 and MMT-503 remote controllers",
                    when="2021-10-05",
                ),
            ],
            {frozenset({"csaf:ICSMA-19-178-01"}), frozenset({"csaf:ICSMA-18-219-02", "feed:fda-remotes"})},
        ),
        # Fuzzy negatives: date out of window; other maker; no shared model token.
        (
            [PUMPS, adv("late", title="Medtronic MiniMed 508 pump recall", when="2019-09-30")],
            {frozenset({"csaf:ICSMA-19-178-01"}), frozenset({"feed:late"})},
        ),
        (
            [PUMPS, adv("other", title="Tandem Diabetes Care recalls t:slim 508 pump", when="2019-06-27")],
            {frozenset({"csaf:ICSMA-19-178-01"}), frozenset({"feed:other"})},
        ),
        (
            [PUMPS, adv("nomodel", title="Medtronic recalls Valleylab FT10 generators", when="2019-06-27")],
            {frozenset({"csaf:ICSMA-19-178-01"}), frozenset({"feed:nomodel"})},
        ),
        # Items without ids never merge with each other, however alike.
        (
            [adv("fda-1", title="Medtronic MiniMed 508 recall"), adv("fda-2", title="Medtronic MiniMed 508 recall")],
            {frozenset({"feed:fda-1"}), frozenset({"feed:fda-2"})},
        ),
        # Same recall number from two sources: one event.
        (
            [
                adv("Z-1811-2022", advisory_id="Z-1811-2022", kind=SourceKind.OPENFDA, source="openfda"),
                adv("page", advisory_id="Z-1811-2022"),
            ],
            {frozenset({"openfda:Z-1811-2022", "feed:page"})},
        ),
    ],
)
def test_fold_rules(items: list[Advisory], expected: set[frozenset[str]]) -> None:
    assert groups(items) == expected


def test_primary_is_the_structured_source_and_event_id_is_stable() -> None:
    rss = adv("ICSMA-19-178-01", advisory_id="ICSMA-19-178-01", source="rss")
    for order in ([PUMPS, rss], [rss, PUMPS]):
        (event,) = fold(order, ALIASES)
        assert event.event_id == "ICSMA-19-178-01"
        assert event.primary.kind is SourceKind.CSAF


def test_real_near_misses_stay_apart() -> None:
    """ICSMA-18-219-02 (remote controllers) and ICSMA-22-263-01 (600 series) share pump families with
    ICSMA-19-178-01 but are different events; the FDA recalls fold only into their own advisory."""
    advisories = [a for f in sorted((FIXTURES / "events").glob("*.json")) for a in read_advisory_file(f).advisories]
    advisories += read_advisory_file(FIXTURES / "rss" / "fda-medical-device-recalls.xml").advisories
    events = {e.event_id: {m.entry_id for m in e.members} for e in fold(advisories, ALIASES)}
    fda = "https://www.fda.gov/medical-devices/medical-device-recalls/"
    assert fda + "medtronic-recalls-minimed-insulin-pumps-potential-cybersecurity-risks" in events["ICSMA-19-178-01"]
    assert any(m.startswith(fda + "medtronic-recalls-remote-controllers") for m in events["ICSMA-18-219-02"])
    assert len(events["ICSMA-19-178-01"]) == 2 and len(events["ICSMA-18-219-02"]) == 2
    assert events["ICSMA-22-263-01"] == {"ICSMA-22-263-01"}, "the 2021 600-series recall is a year before it"


def test_fold_is_order_independent() -> None:
    advisories = [a for f in sorted((FIXTURES / "events").glob("*.json")) for a in read_advisory_file(f).advisories]
    advisories += read_advisory_file(FIXTURES / "rss" / "fda-medical-device-recalls.xml").advisories
    forward = {e.event_id: frozenset(m.key for m in e.members) for e in fold(advisories, ALIASES)}
    backward = {e.event_id: frozenset(m.key for m in e.members) for e in fold(list(reversed(advisories)), ALIASES)}
    assert forward == backward


def test_never_joined_by_url_alone() -> None:
    """CISA's advisory URLs moved three times: a shared link is no evidence of one event (nor a differing one
    of two)."""
    from dataclasses import replace

    link = "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-19-178-01"
    a = replace(adv("a", title="Pump notice", when="2030-01-01"), url=link)
    b = replace(adv("b", title="Pump notice", when="2030-01-01"), url=link)
    moved = replace(PUMPS, url="https://www.us-cert.gov/ics/advisories/icsma-19-178-01")
    assert groups([a, b, moved]) == {frozenset({"feed:a"}), frozenset({"feed:b"}), frozenset({"csaf:ICSMA-19-178-01"})}
