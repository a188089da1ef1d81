"""Fault injection: what a failing source or notification target does to the daemon.

Promise 3 (source isolation and health), as a table: two RSS sources on a real local HTTP server, one
healthy ("cisa", the recorded CISA-shaped feed) and one that breaks in a given way ("fda", the recorded
FDA recalls feed); watched devices match items of both. A good cycle first (so "fda" has stored
advisories and alerts), then two cycles with the fault while "cisa" gains one new matching item per
cycle, then a recovery cycle. Each case checks: the cycle names the failed source with a one-line
reason naming the fault; the healthy source's new item still alerts; "fda"'s stored advisories are
all still there; every (event, device) got exactly one alert, printed exactly once; the failure is
logged at ERROR once for the change of state (not again on the second failing cycle), and the
recovery once at INFO.

Also for promise 3: odd but readable feeds (latin-1, stray invalid bytes, a BOM, a wrong label, an
impossible date) are read, not failed; hostile XML (billion laughs, quadratic blow-up, XXE) is refused
by `run --once` in a process of its own whose peak RSS is measured; a Retry-After keeps the daemon
loop off the source until then.

Promise 1 (at-least-once delivery) with one live and one refusing aiosmtpd server and a chat webhook
that answers 500: the live target gets each alert once, the dead ones stay pending with attempts
growing, then get each alert once when they come back; past max_attempts the alert is still pending,
listed by `aggregator alerts` and logged at ERROR. A target that never answers costs time only.

Everything runs on 127.0.0.1: DNS failures come from a resolver that refuses every name.
Bugs this suite found were fixed where they lived; each fix is covered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import re
import resource
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiosmtpd.controller import Controller

from aggregator import sources
from aggregator.config import Config, SourceConfig, load_config
from aggregator.daemon import CycleReport, Daemon
from aggregator.models import FeedState, PollResult, SourceKind
from aggregator.sources.http import USER_AGENT, Fetcher
from aggregator.store import Store
from tests.conftest import (
    PROJECT,
    FeedServer,
    MailCollector,
    SmtpServer,
    closed_port_url,
    fixture_bytes,
    free_port,
    run_cli,
    write_config,
)
from tests.test_e2e import feed_with

FDA_FEED = fixture_bytes("rss", "fda-medical-device-recalls.xml")
FAST = {"attempts": 2, "backoff_initial": 0.01, "max_retry_wait": 1}
# One new matching CISA item per failing cycle (both concern the watched "monitor").
NEW_CISA_ITEMS = ("ICSMA-18-179-01", "ICSMA-20-345-01")
FDA_MAX_BYTES = 100_000
MEMORY_BOUND_KB = 300 * 1024


# -- a feed server with the faults a static Route cannot express -------------------------------


class FaultServer(FeedServer):
    """FeedServer plus: a body trickled a byte every 0.5 s, a body cut off before its Content-Length (at
    the same point, or at a different one each time), an endless chunked body, and POST hooks (a chat
    webhook) with scripted statuses."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.post_status: dict[str, int] = {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        special = {
            "/trickle.xml": self._trickle,
            "/cut.xml": self._cut,
            "/cut-varying.xml": self._cut,
            "/endless.xml": self._endless,
        }
        handler = special.get(request.path)
        if handler is None:
            return await super()._handle(request)
        self.requests.append((request.path, dict(request.headers)))
        return await handler(request)

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        resp.content_length = len(FDA_FEED)
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            for i in range(60):  # 30 s at most, even if nobody hangs up
                await resp.write(FDA_FEED[i : i + 1])
                await asyncio.sleep(0.5)
        return resp

    async def _cut(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        resp.content_length = len(FDA_FEED)
        await resp.prepare(request)
        cut = len(FDA_FEED) // 2
        if request.path == "/cut-varying.xml":  # where a real connection drops differs every time
            cut += 97 * len(self.hits(request.path))
        await resp.write(FDA_FEED[:cut])
        assert request.transport is not None
        request.transport.close()  # hang up mid-body: the client sees less than Content-Length
        return resp

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        resp.enable_chunked_encoding()  # no Content-Length: only counting the bytes can stop it
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write(FDA_FEED[:200] + b"<!--")
            for _ in range(200):  # 12.8 MB at most
                await resp.write(b"x" * 65536)
        return resp

    async def _post(self, request: web.Request) -> web.Response:
        self.posts.setdefault(request.path, []).append(await request.json())
        status = self.post_status.get(request.path, 200)
        return web.Response(status=status, text="ok" if status == 200 else "chat service down")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        app.router.add_route("POST", "/{tail:.*}", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    server.start()
    yield server
    server.stop()


class NoDnsResolver(AbstractResolver):
    """Answers every lookup as getaddrinfo does for an unknown name, so no DNS query leaves the machine
    (IP literals such as 127.0.0.1 never reach a resolver in aiohttp)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")  # what getaddrinfo raises

    async def close(self) -> None:
        pass


# -- the fault table -----------------------------------------------------------------------------


@dataclass
class Env:
    server: FaultServer
    tmp: Path


@dataclass(frozen=True)
class Fault:
    """One way for the "fda" source to break: `serve` arranges it and returns the source's URL."""

    id: str
    reason: str  # a regex the one-line reason must match: it names the kind of fault
    serve: Callable[[Env], str]
    no_dns: bool = False  # the cycle's HTTP session gets a resolver that fails every lookup


def _route(**kwargs: Any) -> Callable[[Env], str]:
    return lambda env: env.server.set("/fda.xml", **kwargs)


def _path(path: str) -> Callable[[Env], str]:
    return lambda env: env.server.url(path)


def _gzip_bomb(env: Env) -> str:
    # 50 MB inflated from ~50 kB on the wire: the cap must count inflated bytes, not wire bytes.
    inflated = FDA_FEED[:200] + b"<!--" + b" " * 50_000_000 + b"-->"
    return env.server.set("/fda.xml", body=gzip.compress(inflated, 9), headers={"Content-Encoding": "gzip"})


def _local_path_body(env: Env) -> str:
    # A body that happens to be a path (an error page, a misconfigured server, a hostile one) must be
    # parsed as the bytes it is, never opened as a local file (feedparser.parse opens bytes it can open).
    local = env.tmp / "local-feed.xml"
    local.write_bytes(FDA_FEED.replace(b"<item>", LOCAL_ITEM + b"<item>", 1))
    return env.server.set("/fda.xml", body=str(local).encode(), content_type="application/rss+xml")


LOCAL_ITEM = (
    b"<item><title>Tandem Diabetes Care t:slim X2 LOCAL-FILE-MARKER</title>"
    b"<link>https://www.example.org/local</link><guid>local-file-marker</guid></item>\n"
)

_BLOCK_PAGE = (
    b"<!DOCTYPE html><html><head><title>Access Denied</title></head><body><h1>Access Denied</h1>"
    b"You don't have permission to access this server. Reference #18.7a3c1702.1717000000.5f0e1d2</body></html>"
)

FAULTS = [
    Fault("http-500", r"HTTP 500", _route(status=500, body=b"oops")),
    Fault("http-502", r"HTTP 502", _route(status=502, body=b"bad gateway")),
    Fault("http-503", r"HTTP 503", _route(status=503, body=b"maintenance")),
    Fault("http-429-retry-after", r"HTTP 429", _route(status=429, headers={"Retry-After": "3600"})),
    Fault(
        "connection-refused",
        r"cannot connect to 127\.0\.0\.1:\d+ \(connection refused\)",
        lambda env: closed_port_url("/fda.xml"),
    ),
    Fault(
        "dns-failure",
        r"cannot connect to fda-recalls\.invalid:80 \(DNS lookup failed: Name or service not known\)",
        lambda env: "http://fda-recalls.invalid/fda.xml",
        no_dns=True,
    ),
    Fault("timeout-no-answer", r"timed out after 2s", _route(body=FDA_FEED, delay=2.5)),
    Fault("trickling-server", r"timed out after 2s", _path("/trickle.xml")),
    Fault("truncated-body-connection-cut", r"truncated or broken response body", _path("/cut.xml")),
    Fault(
        "truncated-xml-complete-response",
        r"malformed XML",
        _route(body=FDA_FEED[: len(FDA_FEED) // 2]),
    ),
    Fault("malformed-xml", r"malformed XML", _route(body=FDA_FEED.replace(b"</title>", b"</titel>", 3))),
    Fault(
        "malformed-json",
        r"not a readable feed",
        _route(body=b'{"results": [{"recall_number": "Z-1234-2024", ', content_type="application/json"),
    ),
    Fault(
        "wrong-content-type-json-not-rss",
        r"not a readable feed",
        _route(body=json.dumps({"status": "ok", "items": []}).encode(), content_type="application/json"),
    ),
    Fault(
        "cdn-block-page-200",
        r"got an HTML page instead of a feed",
        _route(body=_BLOCK_PAGE, content_type="text/html"),
    ),
    Fault("cdn-block-page-403", r"HTTP 403", _route(status=403, body=_BLOCK_PAGE, content_type="text/html")),
    Fault(
        "suddenly-empty-feed",
        r"feed is suddenly empty \(it had 8 items\)",
        _route(body=FDA_FEED[: FDA_FEED.index(b"<item>")] + b"</channel></rss>\n"),
    ),
    Fault("redirect-loop", r"too many redirects", _route(status=302, headers={"Location": "/fda.xml"})),
    Fault(
        "over-size-cap-declared",
        rf"over the size cap of {FDA_MAX_BYTES} bytes",
        _route(body=FDA_FEED + b"<!--" + b"x" * 2 * FDA_MAX_BYTES + b"-->"),
    ),
    Fault("body-is-a-local-file-path", r"not a readable feed", _local_path_body),
    Fault("over-size-cap-chunked", rf"over the size cap of {FDA_MAX_BYTES} bytes", _path("/endless.xml")),
    Fault("over-size-cap-gzip-bomb", rf"over the size cap of {FDA_MAX_BYTES} bytes", _gzip_bomb),
]


# -- config, cycles and what was alerted ---------------------------------------------------------


def two_source_config(folder: Path, cisa_url: str, fda_url: str) -> Config:
    path = write_config(
        folder,
        f"""
[daemon]
state = "state.sqlite3"
interval = "1h"

[[source]]
name = "cisa"
kind = "rss"
url = "{cisa_url}"

[[source]]
name = "fda"
kind = "rss"
url = "{fda_url}"
timeout = "2s"
max_bytes = {FDA_MAX_BYTES}

[[watch]]
name = "monitor"
manufacturer = "Medtronic"
models = ["MyCareLink Patient Monitor"]

[[watch]]
name = "tslim"
manufacturer = "Tandem Diabetes Care"
models = ["t:slim X2"]
""",
    )
    return load_config(path)


def cycle(config: Config, *, session: Callable[[], aiohttp.ClientSession] | None = None) -> CycleReport:
    """One `run --once` cycle in-process, on a freshly opened state file (as a restarted daemon would)."""
    store = Store.open(config.state)
    try:
        daemon = Daemon(config, store, fetcher_options=FAST)
        if session is None:
            return asyncio.run(daemon.run_once())
        original = Fetcher.new_session
        Fetcher.new_session = staticmethod(session)  # type: ignore[method-assign]
        try:
            return asyncio.run(daemon.run_once())
        finally:
            Fetcher.new_session = original  # type: ignore[method-assign]
    finally:
        store.close()


def alerts(state: Path) -> Counter[tuple[str, str]]:
    """How many alerts were queued per (event, device); operational notices (device "") left out."""
    with contextlib.closing(sqlite3.connect(state)) as db:
        rows = db.execute("SELECT event_id, device FROM alerts WHERE device != ''").fetchall()
    return Counter((r[0], r[1]) for r in rows)


def subjects(state: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(state)) as db:
        return [r[0] for r in db.execute("SELECT subject FROM alerts WHERE device != '' ORDER BY id")]


def stored_entries(state: Path, source: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(state)) as db:
        return {r[0] for r in db.execute("SELECT entry_id FROM advisories WHERE source = ?", (source,))}


def failure_logs(caplog: pytest.LogCaptureFixture, source: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "aggregator.daemon" and r.levelno >= logging.ERROR and f"source {source} failed" in r.message
    ]


def assert_each_once(counts: Counter[tuple[str, str]], expected: set[tuple[str, str]]) -> None:
    assert set(counts) == expected, f"lost: {expected - set(counts)}, unexpected: {set(counts) - expected}"
    repeated = {pair: n for pair, n in counts.items() if n != 1}
    assert not repeated, f"alerted more than once: {repeated}"


# -- promise 3: the matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_a_failing_source_is_isolated_reported_once_and_forgets_nothing(
    fault: Fault, tmp_path: Path, fault_server: FaultServer, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator")
    env = Env(fault_server, tmp_path)
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    good_fda = fault_server.set("/fda.xml", body=FDA_FEED)
    state = tmp_path / "state.sqlite3"

    # 1. A good cycle on both sources.
    good = cycle(two_source_config(tmp_path, cisa_url, good_fda))
    assert good.ok, good.failed_sources
    before = stored_entries(state, "fda")
    assert len(before) == 8
    expected = set(alerts(state))
    assert ("ICSMA-25-205-01", "monitor") in expected
    assert sum(1 for _, device in expected if device == "tslim") == 2, "both Tandem recalls in the fda feed"

    # 2. Two cycles with the fault; the healthy source gains one matching item in each.
    fault_url = fault.serve(env)
    resolver = NoDnsResolver() if fault.no_dns else None
    session = _no_dns_session(resolver) if resolver else None
    faulty_config = two_source_config(tmp_path, cisa_url, fault_url)
    for n, new_item in enumerate(NEW_CISA_ITEMS, start=1):
        fault_server.set("/cisa.xml", body=feed_with(*NEW_CISA_ITEMS[:n]))
        report = cycle(faulty_config, session=session)
        assert sorted(report.polled) == ["cisa", "fda"]
        assert [name for name, _ in report.failed_sources] == ["fda"], "only the faulty source failed"
        reason = report.failed_sources[0][1]
        assert "\n" not in reason and len(reason) < 400, f"one short line: {reason!r}"
        assert re.search(fault.reason, reason), f"the reason names the fault: {reason!r}"
        expected.add((new_item, "monitor"))
        assert_each_once(alerts(state), expected)
        assert stored_entries(state, "fda") == before, "nothing seen before is forgotten"
        errors = failure_logs(caplog, "fda")
        assert len(errors) == 1, f"logged once per change of state, not per poll: {[e.message for e in errors]}"
        assert reason in errors[0].message
    assert any("source fda still failing (2 in a row)" in r.message for r in caplog.records)
    if resolver is not None:
        assert resolver.asked == ["fda-recalls.invalid"] * 4, "the failure came from the (refusing) resolver"
    with contextlib.closing(Store.open(state)) as store:
        st = store.feed_state("fda")
        assert st.outcome == "failed" and st.consecutive_failures == 2 and st.error == reason
        assert st.items == 8 and st.last_success is not None

    # 3. The source comes back: one INFO line, nothing re-alerted, nothing lost.
    fault_server.set("/fda.xml", body=FDA_FEED)
    back = cycle(two_source_config(tmp_path, cisa_url, good_fda))
    assert back.ok, back.failed_sources
    assert any(
        r.levelno == logging.INFO and "source fda recovered after 2 failed polls" in r.message for r in caplog.records
    )
    assert len(failure_logs(caplog, "fda")) == 1
    assert_each_once(alerts(state), expected)
    assert stored_entries(state, "fda") == before

    # Every alert reached its (stdout) target exactly once.
    out = capsys.readouterr().out
    for subject in subjects(state):
        assert out.count(subject + "\n") == 1, subject


def _no_dns_session(resolver: NoDnsResolver) -> Callable[[], aiohttp.ClientSession]:
    # Fetcher.new_session() takes no connector, so the test swaps in a factory building the same
    # session (same User-Agent) on a connector whose resolver refuses every name.
    def make() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(resolver=resolver)
        return aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, connector=connector)

    return make


# -- promise 3: odd but readable feeds are read, not failed ------------------------------------

_LATIN1_ITEM = (
    "<item><title>Tandem Diabetes Care rappelle des pompes à insuline t:slim X2 (défaut du haut-parleur)</title>"
    "<link>https://www.example.org/rappels/tandem-tslim-x2</link>"
    "<description>Pompe à insuline t:slim X2 de Tandem Diabetes Care : arrêt possible de l'insuline.</description>"
    "<guid>rappel-tandem-tslim-x2-fr</guid></item>\n"
)
_BAD_UTF8_ITEM = (
    b"<item><title>Tandem Diabetes Care t:slim X2 Insulin Pump Recall \xff\xfe (Correction \xe9)</title>"
    b"<link>https://www.example.org/recalls/tandem-tslim-x2-bad-bytes</link>"
    b"<description>Tandem Diabetes Care t:slim X2 insulin pumps may stop insulin delivery.</description>"
    b"<guid>recall-tandem-tslim-x2-bad-bytes</guid></item>\n"
)


def _with_item(feed: bytes, item: bytes) -> bytes:
    return feed.replace(b"<item>", item + b"<item>", 1)


_ZERO_DATE_ITEM = (
    b"<item><title>Tandem Diabetes Care t:slim X2 Insulin Pump Recall (date unknown)</title>"
    b"<link>https://www.example.org/recalls/tandem-tslim-x2-zero-date</link>"
    b"<description>Tandem Diabetes Care t:slim X2 insulin pumps may stop insulin delivery.</description>"
    b"<pubDate>0000-00-00T00:00:00Z</pubDate><guid>recall-tandem-tslim-x2-zero-date</guid></item>\n"
)

TOLERATED: list[tuple[str, bytes, str, str]] = [
    # (id, body, content type, a title fragment of the added item as it must be stored)
    (
        "latin-1-declared",
        _with_item(FDA_FEED, _LATIN1_ITEM.encode("latin-1")).replace(b'encoding="utf-8"', b'encoding="iso-8859-1"'),
        "application/rss+xml",
        "rappelle des pompes à insuline t:slim X2 (défaut du haut-parleur)",
    ),
    (
        "utf-8-declared-with-invalid-bytes",
        _with_item(FDA_FEED, _BAD_UTF8_ITEM),
        "application/rss+xml",
        "Tandem Diabetes Care t:slim X2 Insulin Pump Recall",
    ),
    (
        "utf-8-with-bom",
        b"\xef\xbb\xbf" + _with_item(FDA_FEED, _LATIN1_ITEM.encode("utf-8")),
        "application/rss+xml",
        "rappelle des pompes à insuline",
    ),
    (
        # A database's "zero date" (and dates past year 9999) must cost the date, not the feed or the cycle.
        "impossible-pubdate",
        _with_item(FDA_FEED, _ZERO_DATE_ITEM),
        "application/rss+xml",
        "Tandem Diabetes Care t:slim X2 Insulin Pump Recall (date unknown)",
    ),
    (
        "feed-labelled-octet-stream",
        _with_item(FDA_FEED, _LATIN1_ITEM.encode("utf-8")),
        "application/octet-stream",
        "rappelle des pompes à insuline",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "title"), [t[1:] for t in TOLERATED], ids=[t[0] for t in TOLERATED])
def test_odd_encodings_and_labels_are_read_not_failed(
    body: bytes, content_type: str, title: str, tmp_path: Path, fault_server: FaultServer, caplog: Any
) -> None:
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    fda_url = fault_server.set("/fda.xml", body=FDA_FEED)
    config = two_source_config(tmp_path, cisa_url, fda_url)
    state = tmp_path / "state.sqlite3"
    assert cycle(config).ok
    before = stored_entries(state, "fda")
    expected = set(alerts(state))

    fault_server.set("/cisa.xml", body=feed_with(NEW_CISA_ITEMS[0]))
    fault_server.set("/fda.xml", body=body, content_type=content_type)
    report = cycle(config)
    assert report.ok, report.failed_sources
    assert not failure_logs(caplog, "fda")
    after = stored_entries(state, "fda")
    assert before < after and len(after) == len(before) + 1
    with contextlib.closing(Store.open(state)) as store:
        titles = [a.title for a in store.advisories(source="fda")]
    assert any(title in t for t in titles), titles
    new = alerts(state)
    added = set(new) - expected
    assert (NEW_CISA_ITEMS[0], "monitor") in added, "the healthy source carried on"
    assert [device for _, device in added - {(NEW_CISA_ITEMS[0], "monitor")}] == ["tslim"], added
    assert all(n == 1 for n in new.values())


# -- promise 3: hostile XML, in a process of its own so its peak memory can be read ----------


def _doctype(*decls: str) -> bytes:
    return ("<!DOCTYPE rss [\n" + "\n".join(decls) + "\n]>\n").encode()


def _hostile(doctype: bytes, reference: str) -> bytes:
    """The FDA feed with a DOCTYPE and one new Tandem item whose description references the entities."""
    head, rest = FDA_FEED.split(b"\n", 1)
    item = (
        "<item><title>Tandem Diabetes Care t:slim X2 Insulin Pump Field Notice</title>"
        "<link>https://www.example.org/recalls/tandem-tslim-x2-notice</link>"
        f"<description>Tandem Diabetes Care t:slim X2: {reference}</description>"
        "<guid>tandem-tslim-x2-notice</guid></item>\n"
    ).encode()
    return head + b"\n" + doctype + _with_item(rest, item)


_LOL = ['<!ENTITY lol "lol">'] + [
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
]
HOSTILE: list[tuple[str, Callable[[Path], bytes]]] = [
    ("billion-laughs", lambda tmp: _hostile(_doctype(*_LOL), "&lol9;")),
    (
        "quadratic-blowup",
        # 98 kB on the wire, 400 MB if expanded.
        lambda tmp: _hostile(_doctype(f'<!ENTITY big "{"B" * 40_000}">'), "&big;" * 10_000),
    ),
    (
        "xxe-system-entity",
        lambda tmp: _hostile(
            _doctype(
                '<!ENTITY xxe SYSTEM "file:///etc/passwd">',
                f'<!ENTITY secret SYSTEM "{(tmp / "secret.txt").as_uri()}">',
            ),
            "&xxe; &secret;",
        ),
    ),
    (
        "xxe-parameter-entity",
        lambda tmp: _hostile(
            _doctype(
                f'<!ENTITY % remote SYSTEM "{(tmp / "secret.dtd").as_uri()}">',
                "%remote;",
            ),
            "&secret;",
        ),
    ),
]
SECRET = "XXE-SECRET-d41d8cd98f00"


def run_measured(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`python -m aggregator ARGS` in its own process; returns it and its peak RSS in kB."""
    if not Path("/usr/bin/time").exists():  # an upper bound: the largest peak of any child waited for so far
        result = run_cli(*args)
        return result, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_file = folder / "peak-rss.txt"
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", str(peak_file), sys.executable, "-m", "aggregator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(PROJECT),
        check=False,
    )
    return result, int(peak_file.read_text().split()[-1])


def listed_advisories(config: Config, source: str) -> set[str]:
    listed = run_cli("advisories", "--source", source, "--config", str(config.path))
    assert listed.returncode == 0, listed.stderr
    return {json.loads(line)["advisory"] for line in listed.stdout.splitlines()}


@pytest.mark.parametrize("make", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_xml_is_not_expanded_and_memory_stays_bounded(
    make: Callable[[Path], bytes], tmp_path: Path, fault_server: FaultServer
) -> None:
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.dtd").write_text(f'<!ENTITY secret "{SECRET}">')
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    fda_url = fault_server.set("/fda.xml", body=FDA_FEED)
    config = two_source_config(tmp_path, cisa_url, fda_url)
    state = tmp_path / "state.sqlite3"
    assert cycle(config).ok
    before = stored_entries(state, "fda")
    body = make(tmp_path)
    assert len(body) < FDA_MAX_BYTES, "small on the wire: only expansion could make it big"
    fault_server.set("/fda.xml", body=body)

    listed_before = listed_advisories(config, "fda")
    assert len(listed_before) == 8
    peaks = []
    stderrs = []
    for n in (1, 2):
        fault_server.set("/cisa.xml", body=feed_with(*NEW_CISA_ITEMS[:n]))
        result, peak_kb = run_measured(tmp_path, "run", "--once", "--config", str(config.path))
        peaks.append(peak_kb)
        stderrs.append(result.stderr)
        print(f"hostile XML cycle {n}: exit {result.returncode}, peak RSS {peak_kb / 1024:.0f} MB")
        assert result.returncode in (0, 1), result.stderr
        assert (NEW_CISA_ITEMS[n - 1], "monitor") in alerts(state), "the healthy source carried on"
        assert subjects(state)[-1] in result.stdout
        failed = [line for line in result.stderr.splitlines() if line.startswith("source ")]
        assert len(failed) <= 1 and all(line.startswith("source fda: ") for line in failed), failed
        assert all(re.search(r"declares XML entities|malformed XML", line) for line in failed), failed
    assert max(peaks) < MEMORY_BOUND_KB, f"peak RSS {peaks} kB"
    # Either the poll failed (logged at ERROR once, not again) or it parsed without expanding anything.
    error_lines = [s.count("ERROR aggregator.daemon: source fda failed") for s in stderrs]
    assert error_lines in ([1, 0], [0, 0]), error_lines
    assert listed_advisories(config, "fda") >= listed_before, "nothing seen before is forgotten"
    assert stored_entries(state, "fda") >= before
    with contextlib.closing(sqlite3.connect(state)) as db:
        stored = "\n".join(r[0] for r in db.execute("SELECT data FROM advisories UNION ALL SELECT body FROM alerts"))
    assert SECRET not in stored and "root:x:0:0" not in stored, "no external entity was read"
    assert "lollollol" not in stored and "B" * 40_001 not in stored, "no entity was expanded"
    assert all(n == 1 for n in alerts(state).values()), alerts(state)


# -- promise 3: what the matrix does not cover ---------------------------------------------------


def test_the_same_failure_with_varying_details_is_logged_once(
    tmp_path: Path, fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator")
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    assert cycle(two_source_config(tmp_path, cisa_url, fault_server.set("/fda.xml", body=FDA_FEED))).ok
    config = two_source_config(tmp_path, cisa_url, fault_server.url("/cut-varying.xml"))
    reasons = [cycle(config).failed_sources for _ in range(2)]
    assert all(r and "truncated" in r[0][1] for r in reasons), reasons
    assert reasons[0] != reasons[1], "the details differ from one poll to the next"
    assert len(failure_logs(caplog, "fda")) == 1, [r.message for r in failure_logs(caplog, "fda")]


def test_an_unexpected_error_in_one_source_does_not_stop_the_others(
    tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real instance, fixed in rss.py: a "0000-00-00" pubDate raised ValueError out of the RSS poller.
    # The next parser bug must cost one source, not the whole cycle (and the daemon).
    real = sources.POLLERS[SourceKind.RSS]

    async def buggy(source: SourceConfig, fetcher: Fetcher, state: FeedState) -> PollResult:
        if source.name == "fda":
            raise RuntimeError("a bug in a parser")
        return await real(source, fetcher, state)

    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    config = two_source_config(tmp_path, cisa_url, fault_server.set("/fda.xml", body=FDA_FEED))
    assert cycle(config).ok
    monkeypatch.setitem(sources.POLLERS, SourceKind.RSS, buggy)
    fault_server.set("/cisa.xml", body=feed_with(NEW_CISA_ITEMS[0]))
    report = cycle(config)
    assert [name for name, _ in report.failed_sources] == ["fda"]
    assert (NEW_CISA_ITEMS[0], "monitor") in alerts(config.state)


# -- promise 3: Retry-After decides the next poll ------------------------------------------------


def test_retry_after_sets_the_schedule_and_the_loop_waits_for_it(
    tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    fda_url = fault_server.set("/fda.xml", status=429, headers={"Retry-After": "30"})
    path = two_source_config(tmp_path, cisa_url, fda_url).path
    path.write_text(path.read_text().replace('interval = "1h"', 'interval = "1s"'))
    config = load_config(path)

    async def run_until_cisa_polled(times: int, timeout: float) -> None:
        with contextlib.closing(Store.open(config.state)) as store:
            daemon = Daemon(config, store, fetcher_options=FAST)

            async def watch() -> None:
                for _ in range(int(timeout * 10)):
                    if len(fault_server.hits("/cisa.xml")) >= times:
                        break
                    await asyncio.sleep(0.1)
                daemon.stop.set()

            watcher = asyncio.create_task(watch())
            await daemon.run_forever()
            await watcher

    asyncio.run(run_until_cisa_polled(3, timeout=15.0))  # well inside the 30 s the server asked for
    assert len(fault_server.hits("/cisa.xml")) >= 3, "the healthy source kept its 1 s interval"
    assert len(fault_server.hits("/fda.xml")) == 1, "no poll of the throttled source before its Retry-After"
    with contextlib.closing(Store.open(config.state)) as store:
        st = store.feed_state("fda")
    assert st.outcome == "failed" and st.error is not None and "HTTP 429" in st.error
    assert st.next_poll is not None and st.last_poll is not None
    assert (st.next_poll - st.last_poll).total_seconds() >= 0.9 * 30


def test_next_poll_is_never_before_retry_after(
    tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aggregator.daemon.random.uniform", lambda low, high: low)  # the earliest jitter
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    fda_url = fault_server.set("/fda.xml", status=429, headers={"Retry-After": "7200"})
    config = two_source_config(tmp_path, cisa_url, fda_url)
    report = cycle(config)
    assert report.failed_sources and "HTTP 429" in report.failed_sources[0][1]
    with contextlib.closing(Store.open(config.state)) as store:
        st = store.feed_state("fda")
    assert st.next_poll is not None and st.last_poll is not None
    assert (st.next_poll - st.last_poll).total_seconds() >= 7200


# -- promise 1: at-least-once delivery, per target ---------------------------------------------


@pytest.fixture
def refusing_smtp() -> Iterator[SmtpServer]:
    """A second mail server that answers 451 to every message until `collector.refuse = False`."""
    collector = MailCollector()
    collector.refuse = True
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SmtpServer(controller.port, collector)
    controller.stop()


def delivery_config(folder: Path, cisa_url: str, urls: list[str], *, max_attempts: int = 10) -> Config:
    path = write_config(
        folder,
        f"""
[daemon]
state = "state.sqlite3"

[[source]]
name = "cisa"
kind = "rss"
url = "{cisa_url}"

[[watch]]
name = "monitor"
manufacturer = "Medtronic"
models = ["MyCareLink Patient Monitor"]

[notify]
urls = {json.dumps(urls)}
max_attempts = {max_attempts}
""",
    )
    return load_config(path)


def make_due(state: Path) -> None:
    """Skip the back-off (1 min, 2, 4, ...) instead of waiting for it: pending deliveries become due now."""
    if not state.exists():
        return
    with contextlib.closing(sqlite3.connect(state)) as db, db:
        db.execute("UPDATE deliveries SET next_attempt = '2000-01-01T00:00:00+00:00' WHERE status = 'pending'")


def delivery_rows(state: Path, target_url: str) -> dict[str, tuple[str, int, str | None]]:
    """subject -> (status, attempts, last error) of every alert's delivery to one target."""
    key = next(t.key for t in load_config(state.parent / "config.toml").notify.targets if t.url == target_url)
    with contextlib.closing(sqlite3.connect(state)) as db:
        rows = db.execute(
            """SELECT a.subject, d.status, d.attempts, d.last_error FROM deliveries d
               JOIN alerts a ON a.id = d.alert_id WHERE d.target = ? ORDER BY a.id""",
            (key,),
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def mail_subjects(server: SmtpServer) -> Counter[str]:
    return Counter(str(m["Subject"]) for m in server.collector.messages)


def test_a_dead_target_stays_pending_and_never_blocks_or_repeats_the_live_one(
    tmp_path: Path, fault_server: FaultServer, smtp_server: SmtpServer, refusing_smtp: SmtpServer
) -> None:
    chat = f"json://127.0.0.1:{fault_server.port}/hook"
    fault_server.post_status["/hook"] = 500
    live, dead = smtp_server.apprise_url, refusing_smtp.apprise_url
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    config = delivery_config(tmp_path, cisa_url, [live, dead, chat])
    state = config.state

    for n in range(3):  # three cycles, one more matching item each; the dead targets are retried each time
        fault_server.set("/cisa.xml", body=feed_with(*NEW_CISA_ITEMS[:n]))
        make_due(state)
        report = cycle(config)
        assert not report.failed_sources
        sent = subjects(state)
        assert len(sent) == n + 1
        assert mail_subjects(smtp_server) == Counter(sent), "the live target got each alert once, at once"
        for target in (dead, chat):
            rows = delivery_rows(state, target)
            # alert k (0-based) was due in cycles k..n: its attempts grow by one per cycle
            assert [(status, attempts) for status, attempts, _ in rows.values()] == [
                ("pending", n + 1 - k) for k in range(n + 1)
            ]
            assert all(error for _, _, error in rows.values())
        assert len(report.delivery_failures) == 2 * (n + 1)
    assert refusing_smtp.collector.messages == []
    # Each cycle tries a dead target once; its other due alerts are deferred with the same reason
    # (counted as attempts above) rather than each waiting out the same failure.
    assert len(fault_server.posts["/hook"]) == 3, "the chat endpoint was tried once a cycle"
    deferred = [e for _, _, e in delivery_rows(state, chat).values() if (e or "").startswith("deferred: ")]
    assert len(deferred) == 2, "the last cycle deferred the two alerts after the first failure"

    # Both come back; a new process on the same state file delivers what they missed, once each.
    refusing_smtp.collector.refuse = False
    fault_server.post_status["/hook"] = 200
    fault_server.posts["/hook"].clear()
    make_due(state)
    back = run_cli("run", "--once", "--config", str(config.path))
    assert back.returncode == 0, back.stderr
    sent = subjects(state)
    assert mail_subjects(refusing_smtp) == Counter(sent)
    assert Counter(post["title"] for post in fault_server.posts["/hook"]) == Counter(sent)
    assert mail_subjects(smtp_server) == Counter(sent), "nothing re-sent to the target that had it"

    make_due(state)
    quiet = run_cli("run", "--once", "--config", str(config.path))
    assert quiet.returncode == 0, quiet.stderr
    assert mail_subjects(refusing_smtp) == mail_subjects(smtp_server) == Counter(sent)
    assert len(fault_server.posts["/hook"]) == len(sent)
    listed = [json.loads(line) for line in run_cli("alerts", "--config", str(config.path)).stdout.splitlines()]
    assert len(listed) == 3 * len(sent) and {row["status"] for row in listed} == {"delivered"}


def test_past_max_attempts_an_alert_is_kept_listed_logged_and_still_retried(
    tmp_path: Path,
    fault_server: FaultServer,
    smtp_server: SmtpServer,
    refusing_smtp: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aggregator")
    live, dead = smtp_server.apprise_url, refusing_smtp.apprise_url
    cisa_url = fault_server.set("/cisa.xml", body=feed_with())
    config = delivery_config(tmp_path, cisa_url, [live, dead], max_attempts=2)
    state = config.state
    for _ in range(2):
        make_due(state)
        cycle(config)
    failed = [r for r in caplog.records if r.name == "aggregator.notify" and "failed (attempt" in r.message]
    assert [(r.levelno, "(attempt 1)" in r.message) for r in failed] == [
        (logging.WARNING, True),
        (logging.ERROR, False),
    ]
    assert "(attempt 2)" in failed[1].message and "mailto://127.0.0.1" in failed[1].message

    # A third try, by a separate process: still retried, reported on stderr and in the log.
    make_due(state)
    third = run_cli("run", "--once", "--config", str(config.path))
    assert third.returncode == 1
    assert re.search(r"^delivery to mailto://127\.0\.0\.1\S*: .+", third.stderr, re.MULTILINE), third.stderr
    assert re.search(r"ERROR aggregator\.notify: delivery of alert 1 to .* failed \(attempt 3\)", third.stderr)
    assert re.search(r"^stuck: alert 1 to mailto://127\.0\.0\.1\S* failed 3 times", third.stderr, re.MULTILINE)

    listed = [json.loads(line) for line in run_cli("alerts", "--config", str(config.path)).stdout.splitlines()]
    assert len(listed) == 2
    stuck = [row for row in listed if row["status"] != "delivered"]
    assert len(stuck) == 1, listed
    assert stuck[0]["status"] == "pending" and stuck[0]["attempts"] == 3 and stuck[0]["last_error"]
    assert stuck[0]["next_attempt"] > stuck[0]["created"], "retried later with back-off, not dropped"
    assert len(smtp_server.collector.messages) == 1

    refusing_smtp.collector.refuse = False
    make_due(state)
    assert cycle(config).ok
    assert mail_subjects(refusing_smtp) == mail_subjects(smtp_server) == Counter(subjects(state))


def test_a_hanging_target_costs_time_but_the_live_one_still_gets_the_alert(
    tmp_path: Path, fault_server: FaultServer, smtp_server: SmtpServer
) -> None:
    with socket.socket() as blackhole:  # accepts connections (the kernel does) and never says a word
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        hanging = f"json://127.0.0.1:{blackhole.getsockname()[1]}/hook"
        cisa_url = fault_server.set("/cisa.xml", body=feed_with())
        config = delivery_config(tmp_path, cisa_url, [hanging, smtp_server.apprise_url])
        report = cycle(config)
    assert not report.failed_sources and len(report.delivery_failures) == 1
    sent = subjects(config.state)
    assert len(sent) == 1 and mail_subjects(smtp_server) == Counter(sent)
    [(status, attempts, error)] = delivery_rows(config.state, hanging).values()
    assert status == "pending" and attempts == 1 and error
