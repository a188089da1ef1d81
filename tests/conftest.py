"""Real local servers for the tests: an aiohttp feed server and an aiosmtpd mail server, both on 127.0.0.1.

Both run in a background thread with their own event loop, so the same server serves in-process
async tests and the `aggregator` command run as a separate process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email
import email.policy
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT.parent / "shared" / "corpus"


@dataclass
class Route:
    """What the feed server answers on one path. `script` statuses are served first, one per request."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml"
    etag: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    script: list[int] = field(default_factory=list)
    delay: float = 0.0


class FeedServer:
    """An aiohttp web server on 127.0.0.1 whose routes tests change while it runs."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, **kwargs: Any) -> str:
        self.routes[path] = Route(**kwargs)
        return self.url(path)

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="not found")
        if route.delay:
            await asyncio.sleep(route.delay)
        if route.script:
            status = route.script.pop(0)
            if status != 200:
                return web.Response(status=status, text=f"scripted {status}", headers=route.headers)
        if route.etag and request.headers.get("If-None-Match") == route.etag:
            return web.Response(status=304, headers={"ETag": route.etag})
        headers = dict(route.headers)
        if route.etag:
            headers["ETag"] = route.etag
        return web.Response(status=route.status, body=route.body, content_type=route.content_type, headers=headers)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._runner is not None:
            # A handler still sleeping (a "slow server" test) must not hold the test up.
            with contextlib.suppress(concurrent.futures.TimeoutError):
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(3)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class MailCollector:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 Requested action aborted: try again later"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@dataclass
class SmtpServer:
    port: int
    collector: MailCollector

    @property
    def apprise_url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=alerts@example.org&to=me@example.org&mode=insecure"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    collector = MailCollector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SmtpServer(controller.port, collector)
    controller.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url(path: str = "/feed.xml") -> str:
    """A loopback URL where nothing listens: connection refused, never the outside world."""
    return f"http://127.0.0.1:{free_port()}{path}"


def write_config(folder: Path, body: str) -> Path:
    path = folder / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m aggregator ARGS` as a separate process, as a person would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("AGGREGATOR_CONFIG", None) if env is None or "AGGREGATOR_CONFIG" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(PROJECT),
        check=False,
    )


def fixture_bytes(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()
