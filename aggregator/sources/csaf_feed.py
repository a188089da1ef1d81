"""CSAF providers: provider-metadata.json → ROLIE feeds or changes.csv → documents; or a local folder.

The cursor (JSON) remembers:
- `since`: when the last complete pass started; the next poll reads documents updated after
  `since - overlap` (publishers back-date), or after `since` itself when `exact` (the resume point of a
  poll the document cap cut short);
- `kind` of the configured URL and the `feeds` the provider metadata listed, so a 304 on the metadata
  still reaches the feeds; `validators`: the ETag/Last-Modified of each feed for conditional GETs;
- `pending`: documents that failed (fetch, parse, digest) and are retried on the next poll even when they
  fall out of the window, dropped once the provider stops listing them.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from aggregator.config import SourceConfig
from aggregator.errors import BlockedError, ParseError, SourceError
from aggregator.identifiers import parse_datetime
from aggregator.models import Advisory, FeedState, FetchResult, PollResult
from aggregator.sources.csaf import is_csaf, parse_csaf
from aggregator.sources.http import Fetcher, TransientError, ensure_not_blocked
from aggregator.sources.jsonvalues import as_dict, as_list, as_str, load_object, opt_str

MAX_DOCUMENTS = 3000  # per poll; CISA's OT feed lists ~2,400, so a full backfill fits in one poll
CONCURRENCY = 4
MAX_PENDING = 500
_TLP_LABELS = frozenset({"WHITE", "CLEAR"})
_JSON_ACCEPT = "application/json, */*;q=0.1"
_CHANGES = "changes.csv"
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
_DIGEST_LENGTHS = {128: "sha512", 64: "sha256"}


@dataclass(frozen=True, slots=True)
class _Doc:
    """One document a listing names."""

    url: str
    updated: datetime | None = None
    hash_url: str | None = None  # the digest file the provider links (ROLIE rel="hash")
    probe_hash: bool = False  # directory layout: `<doc>.sha512` may sit next to the document


@dataclass(slots=True)
class _Cursor:
    since: datetime | None = None
    exact: bool = False
    kind: str | None = None  # "metadata", "rolie" or "changes": what the configured URL serves
    feeds: list[str] = field(default_factory=list)
    validators: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    pending: list[_Doc] = field(default_factory=list)

    @classmethod
    def load(cls, text: str | None) -> _Cursor:
        """The stored cursor; a missing or unreadable one starts afresh (the window falls back to state)."""
        raw = load_object(text)
        pending = [
            _Doc(str(p["url"]), None, p.get("hash") or None, bool(p.get("probe")))
            for p in as_list(raw.get("pending"))
            if isinstance(p, dict) and isinstance(p.get("url"), str)
        ]
        validators = {
            url: (opt_str(v[0]), opt_str(v[1]))
            for url, v in as_dict(raw.get("validators")).items()
            if isinstance(v, list) and len(v) == 2
        }
        return cls(
            since=parse_datetime(opt_str(raw.get("since"))),
            exact=bool(raw.get("exact")),
            kind=opt_str(raw.get("kind")),
            feeds=[f for f in as_list(raw.get("feeds")) if isinstance(f, str)],
            validators=validators,
            pending=pending,
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "since": self.since.isoformat() if self.since else None,
                "exact": self.exact,
                "kind": self.kind,
                "feeds": self.feeds,
                "validators": {url: list(v) for url, v in self.validators.items()},
                "pending": [
                    {"url": d.url, "hash": d.hash_url, "probe": d.probe_hash} for d in self.pending[:MAX_PENDING]
                ],
            },
            sort_keys=True,
        )


class _DigestMismatch(SourceError):
    """The document's bytes do not match the digest its provider published."""


async def poll_csaf(source: SourceConfig, fetcher: Fetcher, state: FeedState) -> PollResult:
    """Read the documents updated since the last poll (within `backfill` on the first poll)."""
    if source.path is not None:
        return await asyncio.to_thread(_poll_folder, source, state, datetime.now(UTC))
    return await _poll_remote(source, fetcher, state, datetime.now(UTC))


def _cutoff(source: SourceConfig, state: FeedState, cursor: _Cursor, now: datetime) -> datetime:
    if cursor.since is not None:
        return cursor.since if cursor.exact else cursor.since - timedelta(seconds=source.overlap)
    if state.last_success is not None:
        return state.last_success - timedelta(seconds=source.overlap)
    return now - timedelta(seconds=source.backfill)


# --- remote providers ----------------------------------------------------------------------


@dataclass(slots=True)
class _Listing:
    """What the listings (ROLIE feeds, changes.csv) said this poll."""

    docs: list[_Doc] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fresh: int = 0  # listings read in full (not 304)
    failed: int = 0
    total: int = 0


async def _poll_remote(source: SourceConfig, fetcher: Fetcher, state: FeedState, started: datetime) -> PollResult:
    url = source.url or ""
    cursor = _Cursor.load(state.cursor)
    cutoff = _cutoff(source, state, cursor, started)
    # without the cursor a 304 would leave us without the list of feeds
    conditional = cursor.kind is not None
    top = await fetcher.fetch(
        url,
        etag=state.etag if conditional else None,
        last_modified=state.last_modified if conditional else None,
        timeout=source.timeout,
        max_bytes=source.max_bytes,
        accept=_JSON_ACCEPT,
    )
    listing = _Listing()
    if top.not_modified:
        if cursor.kind == "metadata":
            await _read_feeds(source, fetcher, cursor, cursor.feeds, listing)
    else:
        ensure_not_blocked(top)
        await _read_top(source, fetcher, cursor, top, listing)

    listed = {d.url for d in listing.docs}
    every_listing_read = listing.fresh == listing.total and listing.total > 0
    if every_listing_read and not listing.docs:
        # A provider's index never empties for real: this is a broken or truncated answer, not "nothing new".
        raise SourceError("the provider's feeds list no documents at all (suddenly empty?); keeping what was seen")
    retry = [d for d in cursor.pending if d.url in listed or not every_listing_read]
    candidates = _newest_per_url(d for d in listing.docs if d.updated is None or d.updated >= cutoff)
    retry_urls = {d.url for d in retry}
    todo = retry + sorted((d for d in candidates if d.url not in retry_urls), key=_doc_time)
    problems = listing.problems
    capped = len(todo) > MAX_DOCUMENTS
    if capped:
        problems.append(
            f"{len(todo)} documents to read, over the cap of {MAX_DOCUMENTS} per poll: "
            f"the other {len(todo) - MAX_DOCUMENTS} follow on the next poll"
        )
        last = todo[MAX_DOCUMENTS - 1].updated
        cursor.since, cursor.exact = (last, True) if last is not None else (cursor.since, cursor.exact)
        todo = todo[:MAX_DOCUMENTS]
        # the next poll must read the listings again even if they have not changed: forget the validators
        cursor.validators = {}
        top = replace(top, etag=None, last_modified=None)
    elif listing.failed:
        # a feed that failed this time keeps the window where it was, however long it stays down
        cursor.since, cursor.exact = cutoff, True
    else:
        cursor.since, cursor.exact = started, False

    if not todo and top.not_modified and listing.fresh == 0:
        return PollResult(
            source.name,
            not_modified=True,
            etag=top.etag or state.etag,
            last_modified=top.last_modified or state.last_modified,
            cursor=cursor.dump(),
            problems=tuple(problems),
        )
    advisories, failed, doc_problems = await _read_documents(source, fetcher, todo)
    cursor.pending = failed
    if top.not_modified and not capped:
        top = replace(top, etag=top.etag or state.etag, last_modified=top.last_modified or state.last_modified)
    return PollResult(
        source.name,
        tuple(advisories),
        etag=top.etag,
        last_modified=top.last_modified,
        cursor=cursor.dump(),
        problems=(*problems, *doc_problems),
    )


async def _read_top(
    source: SourceConfig, fetcher: Fetcher, cursor: _Cursor, top: FetchResult, listing: _Listing
) -> None:
    """Tell by content what the configured URL serves, and collect the documents it leads to."""
    body = top.body or b""
    try:
        doc: object = json.loads(body.removeprefix(b"\xef\xbb\xbf"))
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("feed"), dict):
        cursor.kind, cursor.feeds = "rolie", []
        listing.docs.extend(_rolie_docs(doc, top.url))
        listing.fresh = listing.total = 1
    elif isinstance(doc, dict) and ("canonical_url" in doc or "distributions" in doc):
        feeds = _feeds_of(doc, top.url)
        if not feeds:
            raise ParseError("provider metadata lists no TLP:WHITE/CLEAR ROLIE feed and no directory_url")
        cursor.kind, cursor.feeds = "metadata", feeds
        cursor.validators = {f: v for f, v in cursor.validators.items() if f in feeds}
        await _read_feeds(source, fetcher, cursor, feeds, listing)
    elif doc is None and _looks_like_changes_csv(body):
        cursor.kind, cursor.feeds = "changes", []
        listing.docs.extend(_changes_docs(body, _directory_of(top.url)))
        listing.fresh = listing.total = 1
    elif is_csaf(doc):
        raise ParseError("this URL is a single CSAF document; give the provider-metadata.json or ROLIE feed")
    else:
        raise ParseError("neither a CSAF provider-metadata.json, a ROLIE feed nor a changes.csv")


async def _read_feeds(
    source: SourceConfig, fetcher: Fetcher, cursor: _Cursor, feeds: list[str], listing: _Listing
) -> None:
    """Fetch every listing the metadata named; one failing listing is a problem while another works."""
    errors: list[SourceError] = []
    listing.total = len(feeds)
    for feed_url in feeds:
        etag, last_modified = cursor.validators.get(feed_url, (None, None))
        try:
            result = await fetcher.fetch(
                feed_url,
                etag=etag,
                last_modified=last_modified,
                timeout=source.timeout,
                max_bytes=source.max_bytes,
                accept=_JSON_ACCEPT,
            )
            if result.not_modified:
                continue
            ensure_not_blocked(result)
            body = result.body or b""
            if _is_changes_url(feed_url):
                docs = _changes_docs(body, _directory_of(feed_url))
            else:
                docs = _rolie_body(body, feed_url)
        except SourceError as exc:
            errors.append(exc)
            listing.failed += 1
            listing.problems.append(f"{feed_url}: {exc}")
            continue
        listing.docs.extend(docs)
        listing.fresh += 1
        cursor.validators[feed_url] = (result.etag, result.last_modified)
    if errors and len(errors) == len(feeds):
        raise errors[0]


def _feeds_of(meta: dict[str, Any], base: str) -> list[str]:
    """TLP:WHITE/CLEAR ROLIE feeds of each distribution, else its directory's changes.csv."""
    found: list[str] = []
    for dist in as_list(meta.get("distributions")):
        dist = as_dict(dist)
        feeds = as_list(as_dict(dist.get("rolie")).get("feeds"))
        white = [
            urljoin(base, as_str(f.get("url")))
            for f in (as_dict(f) for f in feeds)
            if as_str(f.get("tlp_label")).upper() in _TLP_LABELS and as_str(f.get("url"))
        ]
        if white:
            found.extend(white)
        elif as_str(dist.get("directory_url")):
            found.append(urljoin(_as_directory(urljoin(base, as_str(dist.get("directory_url")))), _CHANGES))
    return list(dict.fromkeys(found))


def _rolie_body(body: bytes, feed_url: str) -> list[_Doc]:
    try:
        doc = json.loads(body.removeprefix(b"\xef\xbb\xbf"))
    except ValueError as exc:
        raise ParseError(f"ROLIE feed is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("feed"), dict):
        raise ParseError("not a ROLIE feed: no 'feed' object")
    return _rolie_docs(doc, feed_url)


def _rolie_docs(doc: dict[str, Any], base: str) -> list[_Doc]:
    docs: list[_Doc] = []
    for entry in as_list(as_dict(doc.get("feed")).get("entry")):
        entry = as_dict(entry)
        links = [as_dict(link) for link in as_list(entry.get("link"))]
        src = as_str(as_dict(entry.get("content")).get("src")) or next(
            (as_str(link.get("href")) for link in links if as_str(link.get("rel")) == "self"), ""
        )
        if not src:
            continue
        hashes = [as_str(link.get("href")) for link in links if as_str(link.get("rel")) == "hash"]
        hashes = [h for h in hashes if h]
        hash_url = next((h for h in hashes if h.lower().endswith(".sha512")), hashes[0] if hashes else None)
        updated = parse_datetime(as_str(entry.get("updated"))) or parse_datetime(as_str(entry.get("published")))
        docs.append(_Doc(urljoin(base, src), updated, urljoin(base, hash_url) if hash_url else None))
    return docs


def _looks_like_changes_csv(body: bytes) -> bool:
    first = body.lstrip().split(b"\n", 1)[0].strip().lower()
    return b".json" in first and b"," in first and not first.startswith((b"<", b"{", b"["))


def _changes_docs(body: bytes, directory: str) -> list[_Doc]:
    """Every row of a changes.csv. The file is not sorted by date, so every row is looked at."""
    text = body.decode("utf-8-sig", errors="replace")
    docs = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or not row[0].strip().lower().endswith(".json"):
            continue  # blank lines, a header row
        url = _join_directory(directory, row[0].strip())
        docs.append(_Doc(url, parse_datetime(row[1].strip()), None, probe_hash=True))
    return docs


def _join_directory(directory: str, path: str) -> str:
    """A changes.csv path as a URL. CISA writes repository-root paths (csaf_files/OT/white/2024/x.json) in
    the changes.csv that sits in csaf_files/OT/white/, so a leading part the directory already ends with is
    dropped."""
    if "://" in path:
        return path
    path = path.lstrip("/")
    parts = urlsplit(directory).path.strip("/").split("/")
    for i in range(len(parts)):
        prefix = "/".join(parts[i:]) + "/"
        if prefix != "/" and path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return urljoin(directory, path)


def _directory_of(url: str) -> str:
    return urljoin(url, ".")


def _as_directory(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _is_changes_url(url: str) -> bool:
    return urlsplit(url).path.lower().endswith("/" + _CHANGES)


def _newest_per_url(docs: Iterable[_Doc]) -> list[_Doc]:
    best: dict[str, _Doc] = {}
    for doc in docs:
        current = best.get(doc.url)
        if current is None or _doc_time(doc) > _doc_time(current):
            best[doc.url] = doc
    return list(best.values())


def _doc_time(doc: _Doc) -> datetime:
    return doc.updated or datetime.min.replace(tzinfo=UTC)


async def _read_documents(
    source: SourceConfig, fetcher: Fetcher, docs: list[_Doc]
) -> tuple[list[Advisory], list[_Doc], list[str]]:
    """Fetch, verify and parse `docs`, a few at a time. A failing document is a problem line, unless every
    document failed with a network error, a 5xx/429 or a CDN block page: then the provider is unreachable
    and the whole poll fails (a single dead link in a feed must not mark the source as down)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(doc: _Doc) -> Advisory | SourceError:
        async with gate:
            try:
                return await _read_document(source, fetcher, doc)
            except SourceError as exc:
                return exc

    outcomes = await asyncio.gather(*(one(d) for d in docs))
    advisories = [o for o in outcomes if isinstance(o, Advisory)]
    errors = [(d, o) for d, o in zip(docs, outcomes, strict=True) if isinstance(o, SourceError)]
    if errors and not advisories and all(isinstance(e, TransientError | BlockedError) for _, e in errors):
        doc, first = errors[0]
        message = f"all {len(errors)} documents failed to download; first: {doc.url}: {first}"
        if isinstance(first, TransientError):
            raise TransientError(message, first.retry_after)
        raise SourceError(message)
    return advisories, [d for d, _ in errors], [f"{d.url}: {e}" for d, e in errors]


async def _read_document(source: SourceConfig, fetcher: Fetcher, doc: _Doc) -> Advisory:
    result = await fetcher.fetch(doc.url, timeout=source.timeout, max_bytes=source.max_bytes, accept=_JSON_ACCEPT)
    ensure_not_blocked(result)
    body = result.body or b""
    digest = await _published_digest(source, fetcher, doc)
    if digest is not None:
        _verify(body, digest, doc.hash_url or doc.url + ".sha512")
    return parse_csaf(body, source=source.name)


async def _published_digest(source: SourceConfig, fetcher: Fetcher, doc: _Doc) -> str | None:
    if doc.hash_url is None and not doc.probe_hash:
        return None
    url = doc.hash_url or doc.url + ".sha512"
    statuses = frozenset({200, 404}) if doc.hash_url is None else frozenset({200})
    try:
        result = await fetcher.fetch(url, timeout=source.timeout, max_bytes=64 * 1024, ok_statuses=statuses)
    except SourceError as exc:
        raise SourceError(f"cannot fetch its digest {url}: {exc}") from exc
    if result.status == 404:
        return None  # this directory publishes no digest for the document
    ensure_not_blocked(result)
    return (result.body or b"").decode("ascii", errors="replace")


def _verify(body: bytes, published: str, hash_url: str) -> None:
    """Compare the document with a `sha512sum`-style digest ("<hex>  <file name>" or just the hex)."""
    expected = (published.split() or [""])[0].strip().lower()
    algorithm = "sha256" if hash_url.lower().endswith(".sha256") else _DIGEST_LENGTHS.get(len(expected), "")
    size = 2 * hashlib.new(algorithm).digest_size if algorithm else 0
    if not size or len(expected) != size or not _HEX_RE.match(expected):
        raise _DigestMismatch(f"unreadable digest file {hash_url}")
    actual = hashlib.new(algorithm, body).hexdigest()
    if actual != expected:
        raise _DigestMismatch(
            f"{algorithm} mismatch: the provider published {expected[:16]}…, "
            f"the document hashes to {actual[:16]}…; not stored"
        )


# --- local folder (a clone of cisagov/CSAF) -------------------------------------------------


def _poll_folder(source: SourceConfig, state: FeedState, started: datetime) -> PollResult:
    """Every CSAF *.json under the folder. The first poll keeps documents whose current_release_date
    (or, lacking one, file time) is within the backfill: in a fresh clone every file time is the clone's.
    Later polls read files modified since the last poll minus the overlap: CISA rewrites files without
    bumping their dates, and the store's content hash notices such changes."""
    folder = source.path or Path()
    if not folder.is_dir():
        raise SourceError(f"{folder} is not a folder")
    cursor = _Cursor.load(state.cursor)
    first = cursor.since is None and state.last_success is None
    cutoff = _cutoff(source, state, cursor, started)
    found: list[tuple[datetime, Advisory]] = []
    problems: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # .git and friends
        try:
            if not path.is_file():
                continue
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if not first and mtime < cutoff:
                continue
            read = _read_file(path, source.name, mtime, cutoff if first else None)
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        except SourceError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if read is not None:
            found.append((read.updated or mtime, read))
    if len(found) > MAX_DOCUMENTS:
        found.sort(key=lambda item: item[0], reverse=True)
        problems.append(
            f"{len(found)} documents in the window, over the cap of {MAX_DOCUMENTS}: "
            f"kept the newest, skipped {len(found) - MAX_DOCUMENTS} older ones"
        )
        found = found[:MAX_DOCUMENTS]
    cursor.since, cursor.exact, cursor.kind = started, False, "folder"
    advisories = tuple(adv for _, adv in found)
    return PollResult(source.name, advisories, cursor=cursor.dump(), problems=tuple(problems))


def _read_file(path: Path, source: str, mtime: datetime, cutoff: datetime | None) -> Advisory | None:
    """The file's advisory; None for JSON that is no CSAF (ROLIE feeds, metadata in the same tree) and for
    documents whose current_release_date (else file time) is before `cutoff`."""
    body = path.read_bytes()
    try:
        doc = json.loads(body.removeprefix(b"\xef\xbb\xbf"))
    except ValueError as exc:
        if b'"csaf_version"' in body[:65536]:
            raise ParseError(f"invalid JSON: {exc}") from exc
        return None
    if not is_csaf(doc):
        return None
    current = parse_datetime(as_str(as_dict(as_dict(doc.get("document")).get("tracking")).get("current_release_date")))
    if cutoff is not None and (current or mtime) < cutoff:
        return None
    digest_file = path.with_name(path.name + ".sha512")
    if digest_file.is_file():
        _verify(body, digest_file.read_text(encoding="ascii", errors="replace"), str(digest_file))
    return parse_csaf(body, source=source)


# --- helpers --------------------------------------------------------------------------------
