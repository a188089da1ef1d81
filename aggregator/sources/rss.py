"""RSS/Atom feeds (CISA, FDA, regulators) on feedparser, fed bytes that aiohttp fetched. Parsing is pure."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import io
import re
import xml.parsers.expat
import xml.sax
from datetime import UTC, datetime
from typing import Any

import feedparser
from feedparser.encodings import convert_to_utf8
from feedparser.sanitizer import replace_doctype

from aggregator.config import SourceConfig
from aggregator.errors import ParseError, SourceError
from aggregator.identifiers import (
    advisory_ids,
    all_identifiers,
    cve_ids,
    cwe_ids,
    html_to_text,
    recall_numbers,
)
from aggregator.models import Advisory, FeedState, PollResult, SourceKind
from aggregator.sources.http import Fetcher, ensure_not_blocked, fetch_source

_REVISION_RE = re.compile(r"\((Update [A-Z])\)", re.IGNORECASE)
_CVSS_RE = re.compile(r"CVSS\s*v?[23](?:\.\d)?\s*(?:base score)?\s*:?\s*(\d{1,2}\.\d)", re.IGNORECASE)
_VENDOR_RE = re.compile(r"^Vendor\s*:\s*(.+)$", re.MULTILINE)
_XML_START_RE = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(rss|feed|rdf:RDF)\b", re.DOTALL)


def is_feed(body: bytes) -> bool:
    """The bytes look like an RSS or Atom document (used by `scan` to tell file kinds apart)."""
    return bool(_XML_START_RE.match(body[:4096].lstrip(b"\xef\xbb\xbf")))


def parse_rss(body: bytes, *, source: str) -> list[Advisory]:
    """Every entry of an RSS/Atom feed as an Advisory; ParseError when the bytes are no feed."""
    if declares_entities(body):
        raise ParseError("the feed declares XML entities (<!ENTITY> in its DOCTYPE), as XML bombs and XXE do; refused")
    # A stream, never bytes: feedparser.parse opens bytes naming a local file and parses that file instead.
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no RSS or Atom document found"
        raise ParseError(f"not a readable feed: {reason}")
    problem = parsed.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXException):
        # A truncated or broken document: half a feed must not pass for the whole feed.
        raise ParseError(f"malformed XML: {problem}")
    return _latest_per_entry([_entry_to_advisory(entry, source) for entry in parsed.entries])


def _latest_per_entry(advisories: list[Advisory]) -> list[Advisory]:
    """One advisory per entry id: feeds repeat a guid for an update ("(Update C)") with the same date."""
    chosen: dict[str, Advisory] = {}
    for adv in advisories:
        kept = chosen.get(adv.entry_id)
        if kept is None or _recency(adv) > _recency(kept):
            chosen[adv.entry_id] = adv
    return list(chosen.values())


def _recency(adv: Advisory) -> tuple[float, int]:
    when = adv.updated or adv.published
    letter = adv.revision[-1] if adv.revision else ""
    return (when.timestamp() if when else 0.0, ord(letter) if letter else 0)


class _Stop(Exception):
    def __init__(self, declared: bool) -> None:
        super().__init__()
        self.declared = declared


def declares_entities(body: bytes) -> bool:
    """True when the document declares XML entities, as feedparser's two parsers would see it.

    Entity declarations are what XML bombs (billion laughs, quadratic blow-up) and external-entity reads
    are made of; feeds never need them. feedparser's fallback parser expands the ones it calls safe with
    no limit (a 100 kB feed can take gigabytes), and expat's own limit still lets a capped body grow a
    hundredfold. So look exactly where feedparser does: the entities it would hand its fallback parser,
    then expat reading the same bytes up to the root element.
    """
    data = convert_to_utf8({}, body, {})
    _version, data, entities = replace_doctype(data)
    if entities:
        return True
    parser = xml.parsers.expat.ParserCreate()

    def declared(*_args: object) -> None:
        raise _Stop(declared=True)

    def root(*_args: object) -> None:
        raise _Stop(declared=False)

    parser.EntityDeclHandler = declared
    parser.StartElementHandler = root
    try:
        parser.Parse(data, True)
    except _Stop as stop:
        return stop.declared
    except xml.parsers.expat.ExpatError:
        return False  # expat stops at the same point in feedparser's strict parse; its fallback got no entities
    return False


def _entry_to_advisory(entry: Any, source: str) -> Advisory:
    title = html_to_text(entry.get("title", "")).strip()
    link = entry.get("link") or None
    guid = entry.get("id") or link
    description = entry.get("summary") or ""
    if not description and entry.get("content"):
        description = entry["content"][0].get("value", "")
    summary = html_to_text(description)
    entry_id = guid or "sha256:" + hashlib.sha256((title + summary).encode()).hexdigest()[:32]
    own_ids = advisory_ids(" ".join(filter(None, [guid, link, title])))
    recalls = recall_numbers(" ".join(filter(None, [title, guid, summary])))
    advisory_id = own_ids[0] if own_ids else (recalls[0] if recalls else None)
    # feedparser maps a missing `updated` to `published` with a warning; ask only for what is there.
    updated = _when(entry.get("updated_parsed")) if "updated" in entry else None
    published = _when(entry.get("published_parsed")) if "published" in entry else None
    published = published or updated
    revision = _REVISION_RE.search(title)
    cvss = _CVSS_RE.search(summary)
    vendor = _VENDOR_RE.search(summary)
    return Advisory(
        source=source,
        kind=SourceKind.RSS,
        entry_id=entry_id,
        advisory_id=advisory_id,
        title=title,
        url=link,
        published=published,
        updated=updated,
        summary=summary[:4000],
        identifiers=all_identifiers(title, guid or "", link or "", summary),
        cves=tuple(cve_ids(summary + " " + title)),
        cwes=tuple(cwe_ids(summary)),
        revision=revision.group(1).title() if revision else None,
        cvss_score=float(cvss.group(1)) if cvss else None,
        release_dates=tuple(d for d in (published,) if d),
        manufacturer=vendor.group(1).strip() if vendor else None,
    )


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (ValueError, OverflowError, OSError):  # "0000-00-00", year 10000: the date is lost, not the feed
        return None


async def poll_rss(source: SourceConfig, fetcher: Fetcher, state: FeedState) -> PollResult:
    """Fetch with conditional GET; a 304 costs no parsing."""
    result = await fetch_source(
        fetcher,
        source,
        state,
        accept="application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1",
    )
    if result.not_modified:
        return PollResult(source.name, not_modified=True, etag=state.etag, last_modified=state.last_modified)
    ensure_not_blocked(result)
    # Parsing a large feed takes a while: off the event loop, so other sources' requests keep moving.
    advisories = await asyncio.to_thread(parse_rss, result.body or b"", source=source.name)
    if not advisories and state.items > 0:
        raise SourceError(f"feed is suddenly empty (it had {state.items} items); keeping what was seen")
    return PollResult(source.name, tuple(advisories), etag=result.etag, last_modified=result.last_modified)
