"""The one HTTP fetcher every source shares: timeouts, size cap, conditional GET, bounded retries.

Contains no feed-specific logic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from aggregator import __version__
from aggregator.config import SourceConfig
from aggregator.errors import BlockedError, SourceError
from aggregator.models import FeedState, FetchResult

log = logging.getLogger(__name__)

USER_AGENT = (
    f"aggregator/{__version__} (open-source medical-device advisory watcher; polite polling with conditional GET)"
)
_HTML_STARTS = (b"<!doctype html", b"<html")
_XML_STARTS = (b"<?xml", b"<rss", b"<feed", b"<rdf:rdf", b"{", b"[")


class TransientError(SourceError):
    """A failure worth retrying within the same poll: connection trouble, timeout, 5xx, 429."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def looks_like_html(result: FetchResult) -> bool:
    """True when a feed URL answered with an HTML page (a CDN block or apology page)."""
    if "apology" in result.url:
        return True
    head = (result.body or b"")[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(_HTML_STARTS):
        return True
    # A real feed mislabelled text/html is still a feed; an HTML label on anything else is a block page.
    return "text/html" in result.content_type.lower() and not head.startswith(_XML_STARTS)


def ensure_not_blocked(result: FetchResult) -> None:
    """Raise BlockedError when a feed URL gave an HTML page: a failed poll, never an empty feed."""
    if looks_like_html(result):
        raise BlockedError(f"got an HTML page instead of a feed (CDN block page?) from {result.url}")


class Fetcher:
    """GETs with per-request timeout, a size cap and tenacity retries bounded in count and time."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        attempts: int = 3,
        max_retry_wait: float = 30.0,
        backoff_initial: float = 1.0,
    ) -> None:
        self.session = session
        self.attempts = attempts
        self.max_retry_wait = max_retry_wait
        self.backoff_initial = backoff_initial

    @staticmethod
    def new_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        timeout: float = 30.0,
        max_bytes: int = 20 * 1024 * 1024,
        params: Mapping[str, str] | None = None,
        accept: str = "*/*",
        ok_statuses: frozenset[int] = frozenset({200}),
        headers: Mapping[str, str] | None = None,
    ) -> FetchResult:
        """One GET, retried on transient failures; raises SourceError with a one-line reason."""
        headers = {**(headers or {}), "Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        backoff = wait_exponential(multiplier=self.backoff_initial, max=self.max_retry_wait) + wait_random(
            0, self.backoff_initial
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, TransientError) and exc.retry_after is not None:
                return exc.retry_after
            return float(backoff(state))

        def stop_on_long_retry_after(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return isinstance(exc, TransientError) and (exc.retry_after or 0) > self.max_retry_wait

        bounded = stop_after_attempt(self.attempts) | stop_after_delay(self.max_retry_wait * 2)

        def stop(state: RetryCallState) -> bool:
            return bool(bounded(state)) or stop_on_long_retry_after(state)

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._get_once(url, headers, timeout, max_bytes, params, ok_statuses)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _get_once(
        self,
        url: str,
        headers: dict[str, str],
        timeout: float,
        max_bytes: int,
        params: Mapping[str, str] | None,
        ok_statuses: frozenset[int],
    ) -> FetchResult:
        try:
            async with self.session.get(
                url,
                headers=headers,
                params=params,
                timeout=aiohttp.ClientTimeout(total=timeout),
                max_redirects=5,
            ) as resp:
                if resp.status == 304:
                    return FetchResult(
                        str(resp.url), 304, None, resp.headers.get("ETag"), resp.headers.get("Last-Modified")
                    )
                if resp.status == 429 or resp.status >= 500:
                    raise TransientError(
                        f"HTTP {resp.status} {resp.reason or ''}".strip(),
                        retry_after_seconds(resp.headers.get("Retry-After")),
                    )
                if resp.status not in ok_statuses:
                    raise SourceError(f"HTTP {resp.status} {resp.reason or ''}".strip())
                body = await _read_capped(resp, max_bytes)
                return FetchResult(
                    str(resp.url),
                    resp.status,
                    body,
                    resp.headers.get("ETag"),
                    resp.headers.get("Last-Modified"),
                    resp.headers.get("Content-Type", ""),
                )
        except aiohttp.TooManyRedirects as exc:
            raise SourceError(f"too many redirects (redirect loop?) from {url}") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransientError(f"truncated or broken response body ({exc})") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransientError(f"cannot connect to {exc.host}:{exc.port} ({_reason(exc)})") from exc
        except aiohttp.ClientError as exc:
            raise TransientError(f"connection problem: {exc.__class__.__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise TransientError(f"timed out after {timeout:g}s") from exc


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise SourceError(f"response of {declared} bytes is over the size cap of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise SourceError(f"response is over the size cap of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    """Name the kind of failure: asyncio words a refused or unreachable connect as "Connect call failed
    (addr)", so the errno says which; a failed name lookup says "DNS"."""
    inner: Any = exc.os_error
    text = str(getattr(inner, "strerror", None) or str(inner) or exc.__class__.__name__)
    if type(exc).__name__ == "ClientConnectorDNSError" or isinstance(inner, socket.gaierror):  # aiohttp >= 3.10
        return f"DNS lookup failed: {text}"
    errno = getattr(inner, "errno", None)
    if text.startswith("Connect call failed") and isinstance(errno, int) and errno > 0:
        return os.strerror(errno).lower()
    return text


async def sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep up to `seconds`; True when `stop` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True


async def fetch_source(fetcher: Fetcher, source: SourceConfig, state: FeedState, *, accept: str) -> FetchResult:
    """GET a single-document source (a feed, a page) conditionally, with its configured timeout and cap."""
    return await fetcher.fetch(
        source.url or "",
        etag=state.etag,
        last_modified=state.last_modified,
        timeout=source.timeout,
        max_bytes=source.max_bytes,
        accept=accept,
    )
