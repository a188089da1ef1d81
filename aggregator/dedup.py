"""Fold copies of one real-world event (several sources, revisions) into one Event. Pure.

Rules, in order (the matching issue states them; each is tested in tests/test_dedup.py):
1. Items with the same CISA advisory id (revision letters folded: ICSMA-17-009-01A = -01) are one
   event, whatever source carried them. Items with the same FDA recall number are one event.
2. An item with no CISA advisory id of its own joins the event whose advisory id it names, else the
   one event that carries a CVE it names (a CVE shared by several events joins none of them).
3. Fuzzy, and only for such items: same manufacturer (alias-aware) + at least one shared model token
   + a date within FUZZY_WINDOW of any release or revision date of the event. Only events that
   have a CISA advisory id take such items; a tie between events joins none.
Two different advisory ids never merge; nothing is ever joined by URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.identifiers import ADVISORY_ID_RE, RECALL_RE, event_id_of
from aggregator.manufacturers import ManufacturerAliases, manufacturers_of
from aggregator.match import model_tokens
from aggregator.models import Advisory, Event, EventMatch, Match, SourceKind

FUZZY_WINDOW = timedelta(days=7)

# When several sources tell one event, the most structured one speaks for it.
_KIND_RANK = {SourceKind.CSAF: 0, SourceKind.RSS: 1, SourceKind.OPENFDA: 2, SourceKind.PAGE: 3}


def own_advisory_id(adv: Advisory) -> str | None:
    """The CISA advisory id an item carries as its own (not merely mentions), event-folded."""
    if adv.advisory_id and ADVISORY_ID_RE.fullmatch(adv.advisory_id):
        return event_id_of(adv.advisory_id)
    return None


def fold(advisories: Iterable[Advisory], aliases: ManufacturerAliases | None = None) -> list[Event]:
    """Group advisories into events (see the module docstring for the rules)."""
    cisa: dict[str, list[Advisory]] = {}
    loose: dict[str, list[Advisory]] = {}  # keyed by recall number, else by the item itself
    for adv in advisories:
        key = own_advisory_id(adv)
        if key is not None:
            cisa.setdefault(key, []).append(adv)
        elif adv.advisory_id and RECALL_RE.fullmatch(adv.advisory_id):
            loose.setdefault(adv.advisory_id.upper(), []).append(adv)
        else:
            loose.setdefault(f"{adv.source}:{adv.entry_id}", []).append(adv)

    joiner = _Joiner(cisa, aliases)
    events: dict[str, list[Advisory]] = {key: list(members) for key, members in cisa.items()}
    for key, members in loose.items():
        target = joiner.target_for(members)
        events.setdefault(target or key, []).extend(members)
    return [_event(key, members) for key, members in events.items()]


@dataclass(frozen=True, slots=True)
class _Profile:
    """What the fuzzy rule compares, computed once per CISA event."""

    manufacturers: frozenset[str]
    tokens: frozenset[str]
    dates: tuple[datetime, ...]


class _Joiner:
    """Finds the CISA event an id-less item belongs to, if any."""

    def __init__(self, cisa: dict[str, list[Advisory]], aliases: ManufacturerAliases | None) -> None:
        self.cisa = cisa
        self.aliases = aliases
        self.by_cve: dict[str, set[str]] = {}
        for key, members in cisa.items():
            for adv in members:
                for cve in adv.cves:
                    self.by_cve.setdefault(cve, set()).add(key)
        self._profiles: dict[str, _Profile] = {}

    def target_for(self, members: Sequence[Advisory]) -> str | None:
        named = {event_id_of(i) for adv in members for i in adv.identifiers if ADVISORY_ID_RE.fullmatch(i)}
        named &= self.cisa.keys()
        if len(named) == 1:
            return named.pop()
        if named:
            return None  # names several advisories: a round-up, not a copy of one
        by_cve = {key for adv in members for cve in _cves(adv) for key in self.by_cve.get(cve, ())}
        if len(by_cve) == 1:
            return by_cve.pop()
        if by_cve or self.aliases is None:
            return None
        return self._fuzzy(members)

    def _fuzzy(self, members: Sequence[Advisory]) -> str | None:
        assert self.aliases is not None
        dates = [d for adv in members for d in _dates(adv)]
        if not dates:
            return None
        makers = frozenset().union(*(manufacturers_of(adv, self.aliases) for adv in members))
        if not makers:
            return None
        tokens: frozenset[str] | None = None
        scored: list[tuple[int, str]] = []
        for key in self.cisa:
            profile = self._profile(key)
            if not any(abs(d - e) <= FUZZY_WINDOW for d in dates for e in profile.dates):
                continue
            if not makers & profile.manufacturers:
                continue
            if tokens is None:
                tokens = frozenset().union(*(_tokens(adv) for adv in members))
            shared = len(tokens & profile.tokens)
            if shared:
                scored.append((shared, key))
        scored.sort(reverse=True)
        if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
            return None
        return scored[0][1]

    def _profile(self, key: str) -> _Profile:
        profile = self._profiles.get(key)
        if profile is None:
            assert self.aliases is not None
            members = self.cisa[key]
            profile = _Profile(
                frozenset().union(*(manufacturers_of(adv, self.aliases) for adv in members)),
                frozenset().union(*(_tokens(adv) for adv in members)),
                tuple(d for adv in members for d in _dates(adv)),
            )
            self._profiles[key] = profile
        return profile


def _cves(adv: Advisory) -> set[str]:
    return set(adv.cves) | {i for i in adv.identifiers if i.startswith("CVE-")}


def _dates(adv: Advisory) -> tuple[datetime, ...]:
    return tuple(d for d in (*adv.release_dates, adv.published, adv.updated) if d is not None)


def _tokens(adv: Advisory) -> frozenset[str]:
    text = "\n".join([adv.title, adv.summary, *(f"{p.name} {p.version}" for p in adv.products)])
    return model_tokens(text)


def _event(key: str, members: Sequence[Advisory]) -> Event:
    ordered = sorted(members, key=_primary_order)
    return Event(event_id=key, primary=ordered[0], members=tuple(ordered))


def _primary_order(adv: Advisory) -> tuple[int, int, float, str]:
    newest = max(_dates(adv), default=None)
    has_cisa_id = 0 if own_advisory_id(adv) else 1
    return (has_cisa_id, _KIND_RANK.get(adv.kind, 9), -(newest.timestamp() if newest else 0.0), adv.key)


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
        result.append(
            EventMatch(event, best[0].device, combine_affected(m.affected for m in ms), best[0].why, tuple(best))
        )
    return sorted(result, key=lambda em: (em.event.event_id, em.device.name))


def combine_affected(verdicts: Iterable[bool | None]) -> bool | None:
    """Any source saying affected wins (a missed alert is worse than a needless one); then not-affected."""
    values = list(verdicts)
    if True in values:
        return True
    if False in values:
        return False
    return None
