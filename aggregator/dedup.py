"""Fold copies of one real-world event (several sources, revisions) into one Event. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from aggregator.identifiers import event_id_of
from aggregator.models import Advisory, Event, EventMatch, Match, SourceKind

if TYPE_CHECKING:
    from aggregator.match import ManufacturerAliases

# When several sources tell one event, the most structured one speaks for it.
_KIND_RANK = {SourceKind.CSAF: 0, SourceKind.RSS: 1, SourceKind.OPENFDA: 2, SourceKind.PAGE: 3}


def fold(advisories: Iterable[Advisory], aliases: ManufacturerAliases | None = None) -> list[Event]:
    """Group advisories into events: one per advisory id (revisions included), else one per item."""
    groups: dict[str, list[Advisory]] = {}
    for adv in advisories:
        key = event_id_of(adv.advisory_id) if adv.advisory_id else f"{adv.source}:{adv.entry_id}"
        groups.setdefault(key, []).append(adv)
    return [_event(key, members) for key, members in groups.items()]


def _event(key: str, members: Sequence[Advisory]) -> Event:
    ordered = sorted(members, key=_primary_order)
    return Event(event_id=key, primary=ordered[0], members=tuple(ordered))


def _primary_order(adv: Advisory) -> tuple[int, float, str]:
    newest = max(adv.release_dates or tuple(d for d in (adv.updated, adv.published) if d), default=None)
    return (_KIND_RANK.get(adv.kind, 9), -(newest.timestamp() if newest else 0.0), adv.key)


def event_matches(events: Sequence[Event], matches: Iterable[Match]) -> list[EventMatch]:
    """One EventMatch per (event, device) from the per-advisory matches of its members."""
    event_of = {member.key: event for event in events for member in event.members}
    grouped: dict[tuple[str, str], list[Match]] = {}
    for m in matches:
        event = event_of.get(m.advisory.key)
        if event is not None:
            grouped.setdefault((event.event_id, m.device.name), []).append(m)
    by_id = {e.event_id: e for e in events}
    result = []
    for (event_id, _device), ms in grouped.items():
        event = by_id[event_id]
        best = sorted(ms, key=lambda m: _primary_order(m.advisory))
        result.append(EventMatch(event, best[0].device, combine_affected(m.affected for m in ms), best[0].why,
                                 tuple(best)))
    return sorted(result, key=lambda em: (em.event.event_id, em.device.name))


def combine_affected(verdicts: Iterable[bool | None]) -> bool | None:
    """Any source saying affected wins (a missed alert is worse than a needless one); then not-affected."""
    values = list(verdicts)
    if True in values:
        return True
    if False in values:
        return False
    return None
