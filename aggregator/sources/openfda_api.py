"""openFDA device recall / enforcement API: an incremental date window, paged, within the published limits.

The cursor (JSON) remembers:
- `since`: when the last complete pass started; the next pass asks for records dated from
  `since - overlap` (openFDA loads new data in batches, so a record can appear days after its date)
  up to today;
- `todo`: the date windows a pass has not finished, each `[YYYYMMDD, YYYYMMDD, skip]`, and `started`, when
  that pass began. A pass cut short by the request cap, or by a 429/5xx after some pages were read,
  continues from there on the next poll.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from aggregator.config import SourceConfig
from aggregator.errors import BlockedError, ParseError, SourceError
from aggregator.identifiers import parse_datetime
from aggregator.models import Advisory, FeedState, FetchResult, PollResult
from aggregator.sources.http import Fetcher, TransientError, looks_like_html
from aggregator.sources.jsonvalues import load_object
from aggregator.sources.openfda import is_not_found, parse_openfda_records, total_results

MAX_SKIP = 25_000  # openFDA refuses a larger skip
MAX_LIMIT = 1000
# openFDA allows 240 requests/min and, without a key, 1,000/day per IP (shared by all endpoints):
# an hourly poll of two endpoints stays far below that even when every poll uses its whole budget.
MAX_REQUESTS_PER_POLL = 50
_DAY = "%Y%m%d"
# device/recall: older records carry event_date_posted, newer ones event_date_created (sources.md §2.2);
# both are the day FDA published the record, which is what "new since the last poll" means.
_DATE_FIELDS = {
    "/device/recall.json": ("event_date_created", "event_date_posted"),
    "/device/enforcement.json": ("report_date",),
}


@dataclass(slots=True)
class _Cursor:
    since: datetime | None = None
    todo: list[tuple[date, date, int]] = field(default_factory=list)
    started: datetime | None = None

    @classmethod
    def load(cls, text: str | None) -> _Cursor:
        raw = load_object(text)
        todo = []
        for item in raw.get("todo") or []:
            try:
                start, end, skip = item
                todo.append((_day(start), _day(end), int(skip)))
            except (TypeError, ValueError):
                continue
        return cls(_when(raw.get("since")), todo, _when(raw.get("started")))

    def dump(self) -> str:
        return json.dumps(
            {
                "since": self.since.isoformat() if self.since else None,
                "todo": [[a.strftime(_DAY), b.strftime(_DAY), skip] for a, b, skip in self.todo],
                "started": self.started.isoformat() if self.started else None,
            }
        )


async def poll_openfda(source: SourceConfig, fetcher: Fetcher, state: FeedState) -> PollResult:
    """Records dated within the window, every page of it; the api_key never appears in an error."""
    try:
        return await _poll(source, fetcher, state, datetime.now(UTC))
    except SourceError as exc:
        raise _scrubbed(exc, source.api_key) from None


async def _poll(source: SourceConfig, fetcher: Fetcher, state: FeedState, now: datetime) -> PollResult:
    fields = _date_fields(source.url or "")
    cursor = _Cursor.load(state.cursor)
    if not cursor.todo:
        if cursor.since is not None or state.last_success is not None:
            base = cursor.since or state.last_success or now
            start = (base - timedelta(seconds=source.overlap)).date()
        else:
            start = (now - timedelta(seconds=source.backfill)).date()
        cursor.todo, cursor.started = [(start, now.date(), 0)], now
    limit = max(1, min(source.limit, MAX_LIMIT))
    found: dict[str, Advisory] = {}
    problems: list[str] = []
    requests = 0
    while cursor.todo:
        if requests >= MAX_REQUESTS_PER_POLL:
            problems.append(
                f"stopped after {requests} requests (openFDA allows 240/min, 1,000/day without a key); "
                f"{_describe(cursor.todo)} continue on the next poll"
            )
            break
        start, end, skip = cursor.todo[0]
        try:
            doc = await _page(source, fetcher, fields, start, end, skip, limit)
        except TransientError as exc:
            if requests == 0:
                raise
            problems.append(f"stopped early ({exc}); {_describe(cursor.todo)} continue on the next poll")
            break
        requests += 1
        if doc is None:  # NOT_FOUND: nothing dated in this window
            cursor.todo.pop(0)
            continue
        total = total_results(doc)
        last_skip = (total - 1) // limit * limit if total else 0
        if skip == 0 and last_skip > MAX_SKIP and start < end:
            middle = start + (end - start) // 2
            cursor.todo[0:1] = [(start, middle, 0), (middle + timedelta(days=1), end, 0)]
            continue
        for advisory in parse_openfda_records(doc, source=source.name):
            found[advisory.entry_id] = advisory
        next_skip = skip + limit
        if next_skip >= total or not doc.get("results"):
            cursor.todo.pop(0)
        elif next_skip > MAX_SKIP:
            problems.append(
                f"{total} records dated {_span(start, end)}: openFDA pages no further than skip {MAX_SKIP}, "
                f"so {total - next_skip} of them were not read (narrow the search)"
            )
            cursor.todo.pop(0)
        else:
            cursor.todo[0] = (start, end, next_skip)
    if not cursor.todo:
        cursor.since, cursor.started = cursor.started or now, None
    return PollResult(
        source.name,
        tuple(found.values()),
        cursor=cursor.dump(),
        problems=tuple(_scrub(p, source.api_key) for p in problems),
    )


async def _page(
    source: SourceConfig,
    fetcher: Fetcher,
    fields: tuple[str, ...],
    start: date,
    end: date,
    skip: int,
    limit: int,
) -> dict[str, Any] | None:
    """One page of the search; None when openFDA says nothing matched (its 404 NOT_FOUND)."""
    params = {"search": _search(fields, start, end, source.search), "limit": str(limit), "skip": str(skip)}
    if source.api_key:
        params["api_key"] = source.api_key
    result = await fetcher.fetch(
        source.url or "",
        params=params,
        timeout=source.timeout,
        max_bytes=source.max_bytes,
        accept="application/json",
        ok_statuses=frozenset({200, 400, 403, 404}),
    )
    doc = _json(result, source)
    if result.status == 404 and is_not_found(doc):
        return None
    if result.status != 200 or "error" in doc:
        raise SourceError(f"openFDA answered HTTP {result.status}: {_error_text(doc)}")
    if not isinstance(doc.get("results"), list):
        raise ParseError("not an openFDA response: no 'results' list")
    return doc


def _search(fields: tuple[str, ...], start: date, end: date, extra: str | None) -> str:
    """`(field:[a TO b] OR ...)`, ANDed with the user's filter. openFDA's documentation writes spaces as
    `+`; those are spaces here, since the whole parameter is URL-encoded once more."""
    span = f"[{start.strftime(_DAY)} TO {end.strftime(_DAY)}]"
    window = " OR ".join(f"{f}:{span}" for f in fields)
    query = f"({window})"
    if extra and extra.strip():
        query += f" AND ({extra.replace('+', ' ').strip()})"
    return query


def _json(result: FetchResult, source: SourceConfig) -> dict[str, Any]:
    if looks_like_html(result):  # never result.url in a message: it carries the api_key
        raise BlockedError(f"got an HTML page instead of openFDA JSON (CDN block page?) from {source.url}")
    body = (result.body or b"").removeprefix(b"\xef\xbb\xbf")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        if result.status != 200:
            raise SourceError(f"openFDA answered HTTP {result.status}") from exc
        raise ParseError(f"invalid JSON from openFDA: {exc}") from exc
    if not isinstance(doc, dict):
        raise ParseError("not an openFDA response: top level is not an object")
    return doc


def _error_text(doc: dict[str, Any]) -> str:
    error = doc.get("error")
    if not isinstance(error, dict):
        return "no results and no error code"
    code = str(error.get("code") or "unknown error")
    message = str(error.get("message") or "").strip()
    return f"{code}: {message}" if message else code


def _date_fields(url: str) -> tuple[str, ...]:
    path = urlsplit(url).path.rstrip("/")
    for suffix, fields in _DATE_FIELDS.items():
        if path.endswith(suffix):
            return fields
    raise SourceError(
        "not an openFDA endpoint this source knows: expected …/device/recall.json or …/device/enforcement.json"
    )


def _scrub(text: str, key: str | None) -> str:
    if not key:
        return text
    return text.replace(key, "****").replace(quote(key, safe=""), "****")


def _scrubbed(exc: SourceError, key: str | None) -> SourceError:
    """The same error with the api_key masked (aiohttp messages may quote the request URL)."""
    message = _scrub(str(exc), key)
    if isinstance(exc, TransientError):
        return TransientError(message, exc.retry_after)
    if isinstance(exc, BlockedError | ParseError):
        return type(exc)(message)
    return SourceError(message)


def _describe(todo: list[tuple[date, date, int]]) -> str:
    start, end, skip = todo[0]
    first = f"records dated {_span(start, end)} from number {skip + 1}"
    return first if len(todo) == 1 else f"{first} and {len(todo) - 1} more window(s)"


def _span(start: date, end: date) -> str:
    return f"{start.isoformat()}…{end.isoformat()}"


def _day(value: object) -> date:
    if not isinstance(value, str):
        raise ValueError(value)
    return datetime.strptime(value, _DAY).date()


def _when(value: object) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None
