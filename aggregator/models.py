"""Frozen value objects passed between the stages. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class SourceKind(StrEnum):
    """The kinds of feed a source can be."""

    RSS = "rss"
    CSAF = "csaf"
    OPENFDA = "openfda"
    PAGE = "page"


@dataclass(frozen=True, slots=True)
class Product:
    """One product an advisory names, with its version expression as published."""

    vendor: str
    name: str
    version: str = ""  # version expression as published: "vers:all/*", "<= 2.4A", "" if none
    status: str = ""  # CSAF product_status key: known_affected, fixed, ... ("" when the source has none)
    model_numbers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Advisory:
    """What one source said about one advisory/recall, normalised."""

    source: str  # configured source name (the kind during `scan`)
    kind: SourceKind
    entry_id: str  # unique within the source: guid, tracking id, recall number, link
    advisory_id: str | None  # ICSMA/ICSA id, recall number; None when the item carries none
    title: str
    url: str | None
    published: datetime | None  # tz-aware UTC
    updated: datetime | None = None
    summary: str = ""  # plain text
    identifiers: frozenset[str] = frozenset()  # every ICSMA/ICSA id, CVE and Z-number mentioned
    cves: tuple[str, ...] = ()
    cwes: tuple[str, ...] = ()
    products: tuple[Product, ...] = ()
    revision: str | None = None  # "Update A", "Initial", ...
    cvss_score: float | None = None
    severity: str | None = None  # "HIGH", "Class I", ...
    remediations: tuple[str, ...] = ()
    release_dates: tuple[datetime, ...] = ()  # initial, current and every revision date
    manufacturer: str | None = None  # firm / vendor when the source names one outside products
    extra: tuple[tuple[str, str], ...] = ()  # source-specific facts worth showing (event number...)

    @property
    def key(self) -> str:
        """Identity of this item within its source."""
        return f"{self.source}:{self.entry_id}"

    @property
    def display_id(self) -> str:
        """The advisory id if there is one, else the entry id."""
        return self.advisory_id or self.entry_id


@dataclass(frozen=True, slots=True)
class WatchedDevice:
    """A device a person uses, from the config's [[watch]] list."""

    name: str
    manufacturer: str
    models: tuple[str, ...]
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """An advisory that concerns a watched device, with the reason."""

    advisory: Advisory
    device: WatchedDevice
    affected: bool | None  # True: firmware in range / all versions; False: outside; None: undecided
    why: str
    matched_products: tuple[Product, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    """One real-world event folded from one or more advisories (several sources, revisions)."""

    event_id: str  # stable: the primary advisory id (revision letter stripped) or the item key
    primary: Advisory
    members: tuple[Advisory, ...] = field(default_factory=tuple)

    @property
    def published(self) -> datetime | None:
        """First publication across every source that carried the event."""
        dates = [a.published for a in self.members if a.published]
        return min(dates) if dates else None


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the store remembers about one source between polls."""

    source: str
    etag: str | None = None
    last_modified: str | None = None
    last_poll: datetime | None = None
    last_success: datetime | None = None
    outcome: str | None = None  # "ok", "not-modified", "failed"
    error: str | None = None
    items: int = 0
    consecutive_failures: int = 0
    next_poll: datetime | None = None
    cursor: str | None = None  # source-specific incremental marker (CSAF/openFDA window)
    failure_notified: datetime | None = None  # when the user was last told this source is failing


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one HTTP fetch."""

    url: str
    status: int
    body: bytes | None  # None on 304
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class PollResult:
    """What polling one source produced: advisories, or why it failed."""

    source: str
    advisories: tuple[Advisory, ...] = ()
    not_modified: bool = False
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    problems: tuple[str, ...] = ()  # per-document failures that did not fail the whole poll

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class EventMatch:
    """An event that concerns a watched device: what every source in it said, folded."""

    event: Event
    device: WatchedDevice
    affected: bool | None
    why: str
    matches: tuple[Match, ...]
