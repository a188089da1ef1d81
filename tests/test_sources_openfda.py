"""openFDA API polling (aggregator.sources.openfda_api) against a real local server.

The server is the shared FeedServer with a handler added here that answers like openFDA does: it reads
`search` (date windows), `limit` and `skip`, and answers pages with a `meta.results` block, or a 404
`{"error": {"code": "NOT_FOUND"}}` when nothing matches. Its records come from the shared corpus, through
tests/fixtures/openfda/ (byte copies):
- site-examples-device-recall.json: openFDA's own example (FDA/open.fda.gov, commit 42bf8813…); its
  `anatomy` is a real /device/recall.json response (Arrow International, Z-0053-2020), whose `meta`
  block the server reuses;
- device-recall-z-1811-2022.json: NOT a recording: a device/recall response rebuilt around a real
  recall (Tandem t:slim X2, Z-1811-2022; corpus derived-openfda/);
- site-examples-device-enforcement.json: openFDA's /device/enforcement.json example (Encore Medical).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aggregator.config import SourceConfig
from aggregator.errors import SourceError
from aggregator.models import FeedState, PollResult, SourceKind
from aggregator.sources import openfda_api, poll_source
from aggregator.sources.http import Fetcher
from aggregator.sources.openfda_api import poll_openfda
from tests.conftest import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "openfda"
RECALL = "/device/recall.json"
ENFORCEMENT = "/device/enforcement.json"
KEY = "k3yS3cr3tDoNotLeak"
WINDOW_RE = re.compile(r"(\w+):\[(\d{8}) TO (\d{8})\]")
SINCE_2010 = (datetime.now(UTC) - datetime(2010, 1, 1, tzinfo=UTC)).total_seconds()


def example() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "site-examples-device-recall.json").read_text())
    return doc


def recall_records() -> list[dict[str, Any]]:
    """Arrow (event_date_created 2019-10-07) and Tandem (event_date_posted 2022-10-05)."""
    arrow = example()["anatomy"]["results"][0]
    tandem = json.loads((FIXTURES / "device-recall-z-1811-2022.json").read_text())["results"][0]
    return [arrow, tandem]


def enforcement_records() -> list[dict[str, Any]]:
    doc = json.loads((FIXTURES / "site-examples-device-enforcement.json").read_text())
    return [doc["result"]]


class OpenFdaServer(FeedServer):
    """FeedServer whose /device/*.json answers like openFDA, per search window, limit and skip."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, list[dict[str, Any]]] = {RECALL: recall_records(), ENFORCEMENT: []}
        self.queries: list[dict[str, str]] = []
        self.script: list[web.Response] = []  # answered first, one per request
        self.redirect_to: str | None = None
        self.busy_after: int | None = None  # answer 503 once this many requests were served

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path not in self.records:
            return await super()._handle(request)
        self.queries.append(dict(request.query))
        if self.script:
            return self.script.pop(0)
        if self.busy_after is not None and len(self.queries) > self.busy_after:
            return web.Response(status=503, text="busy")
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to + "?" + request.query_string)
        windows = WINDOW_RE.findall(request.query.get("search", ""))
        matched = [r for r in self.records[request.path] if _in_window(r, windows)]
        if not matched:
            body = {"error": {"code": "NOT_FOUND", "message": "No matches found!"}}
            return web.json_response(body, status=404)
        skip, limit = int(request.query.get("skip", "0")), int(request.query.get("limit", "1"))
        meta = example()["anatomy"]["meta"]
        meta["results"] = {"skip": skip, "limit": limit, "total": len(matched)}
        return web.json_response({"meta": meta, "results": matched[skip : skip + limit]})


def _in_window(record: dict[str, Any], windows: list[tuple[str, str, str]]) -> bool:
    for field, start, end in windows:
        value = str(record.get(field, "")).replace("-", "")
        if value and start <= value <= end:
            return True
    return False


@pytest.fixture
def fda() -> Iterator[OpenFdaServer]:
    server = OpenFdaServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher.new_session() as session:
        yield Fetcher(session, attempts=2, backoff_initial=0.01, max_retry_wait=1)


def fda_source(url: str, **kwargs: Any) -> SourceConfig:
    options: dict[str, Any] = {"backfill": SINCE_2010, "limit": 1, "api_key": KEY, **kwargs}
    return SourceConfig(name="openfda-recalls", kind=SourceKind.OPENFDA, url=url, interval=3600, **options)


def after(state: FeedState, result: PollResult) -> FeedState:
    assert result.ok, result.error
    return replace(state, last_success=datetime.now(UTC), cursor=result.cursor or state.cursor)


def ids(result: PollResult) -> set[str]:
    return {a.entry_id for a in result.advisories}


async def test_pages_through_every_result(fda: OpenFdaServer, fetcher: Fetcher) -> None:
    result, _ = await poll_source(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))

    assert result.ok, result.error
    assert ids(result) == {"Z-0053-2020", "Z-1811-2022"}
    assert [q["skip"] for q in fda.queries] == ["0", "1"]  # two pages of limit=1
    assert all(q["limit"] == "1" and q["api_key"] == KEY for q in fda.queries)
    today = datetime.now(UTC).strftime("%Y%m%d")
    start = (datetime.now(UTC) - timedelta(seconds=SINCE_2010)).strftime("%Y%m%d")
    assert fda.queries[0]["search"] == (
        f"(event_date_created:[{start} TO {today}] OR event_date_posted:[{start} TO {today}])"
    )
    assert not result.problems
    cursor = json.loads(result.cursor or "")
    assert cursor["todo"] == [] and cursor["since"]


async def test_later_poll_asks_from_the_last_success_minus_overlap(
    fda: OpenFdaServer, fetcher: Fetcher
) -> None:
    source = fda_source(fda.url(RECALL), limit=1000)
    first = await poll_openfda(source, fetcher, FeedState("openfda-recalls"))
    assert len(fda.queries) == 1  # both records fit one page of 1000

    second = await poll_openfda(source, fetcher, after(FeedState("openfda-recalls"), first))

    since = datetime.fromisoformat(json.loads(first.cursor or "")["since"])
    start = (since - timedelta(seconds=source.overlap)).strftime("%Y%m%d")
    assert f"event_date_created:[{start} TO " in fda.queries[1]["search"]
    assert second.ok and second.advisories == ()  # nothing dated in the last week: a 404 NOT_FOUND


async def test_not_found_is_a_successful_poll_with_nothing(fda: OpenFdaServer, fetcher: Fetcher) -> None:
    fda.records[RECALL] = []
    result, _ = await poll_source(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))
    assert result.ok and result.advisories == () and not result.problems
    assert len(fda.queries) == 1


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (
            400,
            {"error": {"code": "BAD_REQUEST", "message": "Syntax error in 'search' parameter"}},
            "BAD_REQUEST",
        ),
        (404, {"error": {"code": "NOT_AUTHORIZED", "message": "whatever"}}, "NOT_AUTHORIZED"),
        (
            200,
            {"error": {"code": "SERVER_ERROR", "message": "Check your request and try again"}},
            "SERVER_ERROR",
        ),
    ],
)
async def test_other_error_bodies_fail_the_poll(
    fda: OpenFdaServer, fetcher: Fetcher, status: int, body: dict[str, Any], words: str
) -> None:
    fda.script = [web.json_response(body, status=status)]
    result, _ = await poll_source(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))
    assert not result.ok
    assert words in (result.error or "")


async def test_html_404_is_a_failure_not_an_empty_poll(fda: OpenFdaServer, fetcher: Fetcher) -> None:
    fda.script = [
        web.Response(status=404, text="<html><body>Not Found</body></html>", content_type="text/html")
    ]
    with pytest.raises(SourceError, match="HTML page"):
        await poll_openfda(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))


async def test_429_then_200_is_a_success(fda: OpenFdaServer, fetcher: Fetcher) -> None:
    fda.script = [
        web.json_response({"error": {"code": "OVER_RATE_LIMIT"}}, status=429, headers={"Retry-After": "0"})
    ]
    result = await poll_openfda(
        fda_source(fda.url(RECALL), limit=1000), fetcher, FeedState("openfda-recalls")
    )
    assert ids(result) == {"Z-0053-2020", "Z-1811-2022"}
    assert len(fda.queries) == 2  # the 429 and its retry


async def test_api_key_never_appears_in_an_error(fda: OpenFdaServer, fetcher: Fetcher) -> None:
    # an HTTP error body that echoes the key, and a redirect aiohttp reports with the whole request URL
    fda.script = [
        web.json_response({"error": {"code": "API_KEY_INVALID", "message": f"bad key {KEY}"}}, status=403)
    ]
    result, _ = await poll_source(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))
    assert not result.ok and "API_KEY_INVALID" in (result.error or "")
    assert KEY not in (result.error or "")

    fda.redirect_to = "ftp://127.0.0.1/elsewhere"
    with pytest.raises(SourceError) as caught:
        await poll_openfda(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))
    assert "ftp://127.0.0.1/elsewhere" in str(caught.value)  # the URL is there, the key is not
    assert KEY not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is not None
    assert caught.value.__suppress_context__  # tracebacks will not print the original message


async def test_request_cap_stops_the_poll_and_keeps_the_cursor(
    fda: OpenFdaServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openfda_api, "MAX_REQUESTS_PER_POLL", 1)
    source = fda_source(fda.url(RECALL))
    first = await poll_openfda(source, fetcher, FeedState("openfda-recalls"))
    assert len(first.advisories) == 1
    assert len(first.problems) == 1 and "stopped after 1 requests" in first.problems[0]
    cursor = json.loads(first.cursor or "")
    assert cursor["todo"][0][2] == 1 and cursor["since"] is None  # resumes at skip=1

    second = await poll_openfda(source, fetcher, after(FeedState("openfda-recalls"), first))
    assert fda.queries[1]["skip"] == "1"
    assert fda.queries[1]["search"] == fda.queries[0]["search"]  # the same window, continued
    assert len(second.advisories) == 1 and not second.problems
    done = json.loads(second.cursor or "")
    assert done["todo"] == [] and done["since"] == cursor["started"]


async def test_transient_failure_after_some_pages_keeps_what_was_read(
    fda: OpenFdaServer, fetcher: Fetcher
) -> None:
    fda.busy_after = 1
    result = await poll_openfda(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))
    assert len(result.advisories) == 1
    assert any("stopped early" in p and "HTTP 503" in p for p in result.problems)
    assert json.loads(result.cursor or "")["todo"][0][2] == 1


async def test_first_request_transient_failure_fails_with_retry_after(
    fda: OpenFdaServer, fetcher: Fetcher
) -> None:
    fda.script = [web.Response(status=429, headers={"Retry-After": "0"}) for _ in range(2)]
    result, retry_after = await poll_source(
        fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls")
    )
    assert not result.ok and "HTTP 429" in (result.error or "")
    assert retry_after == 0


async def test_window_is_split_when_skip_would_pass_the_cap(
    fda: OpenFdaServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openfda_api, "MAX_SKIP", 0)  # one page per window: two records force a split
    result = await poll_openfda(fda_source(fda.url(RECALL)), fetcher, FeedState("openfda-recalls"))
    assert ids(result) == {"Z-0053-2020", "Z-1811-2022"}
    assert all(q["skip"] == "0" for q in fda.queries)
    windows = [WINDOW_RE.findall(q["search"])[0][1:] for q in fda.queries]
    assert len(windows) > 2 and windows[0][0] == windows[1][0]  # the first half starts where the whole did
    assert not result.problems


async def test_enforcement_endpoint_searches_report_date(fda: OpenFdaServer, fetcher: Fetcher) -> None:
    fda.records[ENFORCEMENT] = enforcement_records()
    source = fda_source(fda.url(ENFORCEMENT), search='recalling_firm:"Encore+Medical"', api_key=None)
    result = await poll_openfda(source, fetcher, FeedState("openfda-recalls"))
    assert [a.entry_id for a in result.advisories] == ["EVENT-62561"]  # the example record has no number
    query = fda.queries[0]
    assert query["search"].startswith("(report_date:[")
    assert query["search"].endswith(' AND (recalling_firm:"Encore Medical")')
    assert "api_key" not in query


async def test_unknown_endpoint_fails(fda: OpenFdaServer, fetcher: Fetcher) -> None:
    with pytest.raises(SourceError, match=r"device/recall\.json"):
        await poll_openfda(fda_source(fda.url("/drug/event.json")), fetcher, FeedState("openfda-recalls"))
