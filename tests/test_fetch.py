"""The shared fetcher and the RSS poller against a real local HTTP server: 304, retries, block pages, caps."""

from __future__ import annotations

import aiohttp
import pytest

from aggregator.config import SourceConfig
from aggregator.errors import BlockedError, SourceError
from aggregator.models import FeedState, SourceKind
from aggregator.sources import poll_source
from aggregator.sources.http import USER_AGENT, Fetcher, retry_after_seconds
from aggregator.sources.rss import poll_rss
from tests.conftest import FeedServer, closed_port_url, fixture_bytes

FEED = fixture_bytes("rss", "cisa-icsma-not-in-csaf.xml")


def quick(session: aiohttp.ClientSession) -> Fetcher:
    return Fetcher(session, attempts=3, backoff_initial=0.01, max_retry_wait=2)


def rss_source(url: str, **kwargs: object) -> SourceConfig:
    return SourceConfig(name="cisa", kind=SourceKind.RSS, url=url, interval=60, timeout=5, **kwargs)  # type: ignore[arg-type]


async def test_conditional_get_304_costs_no_parsing(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED, etag='"v1"')
    async with Fetcher.new_session() as session:
        first = await poll_rss(rss_source(url), quick(session), FeedState("cisa"))
        assert len(first.advisories) == 47 and first.etag == '"v1"'
        second = await poll_rss(rss_source(url), quick(session), FeedState("cisa", etag=first.etag, items=47))
    assert second.not_modified and second.ok and second.advisories == ()
    hits = feed_server.hits("/feed.xml")
    assert hits[1]["If-None-Match"] == '"v1"'
    assert hits[0]["User-Agent"] == USER_AGENT


async def test_a_500_is_retried_then_succeeds(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED, script=[500, 503])
    async with Fetcher.new_session() as session:
        result = await poll_rss(rss_source(url), quick(session), FeedState("cisa"))
    assert len(result.advisories) == 47
    assert len(feed_server.hits("/feed.xml")) == 3


async def test_persistent_500_fails_after_bounded_attempts(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED, status=500)
    async with Fetcher.new_session() as session:
        result, _ = await poll_source(rss_source(url), quick(session), FeedState("cisa"))
    assert not result.ok and "HTTP 500" in (result.error or "")
    assert len(feed_server.hits("/feed.xml")) == 3


async def test_429_long_retry_after_is_not_waited_for_but_reported(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED, status=429, headers={"Retry-After": "3600"})
    async with Fetcher.new_session() as session:
        result, retry_after = await poll_source(rss_source(url), quick(session), FeedState("cisa"))
    assert not result.ok and retry_after == 3600
    assert len(feed_server.hits("/feed.xml")) == 1


async def test_429_short_retry_after_is_honoured(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED, script=[429], headers={"Retry-After": "1"})
    async with Fetcher.new_session() as session:
        result = await poll_rss(rss_source(url), quick(session), FeedState("cisa"))
    assert len(result.advisories) == 47


async def test_block_page_is_a_failure_not_an_empty_feed(feed_server: FeedServer) -> None:
    page = b"<!DOCTYPE html><html><body>Access Denied. Reference #18.abc</body></html>"
    url = feed_server.set("/feed.xml", body=page, content_type="text/html")
    async with Fetcher.new_session() as session:
        with pytest.raises(BlockedError):
            await poll_rss(rss_source(url), quick(session), FeedState("cisa", items=47))


async def test_redirect_to_apology_page_is_blocked(feed_server: FeedServer) -> None:
    feed_server.set(
        "/apology_objects/abuse-detection-apology.html", body=b"<html>sorry</html>", content_type="text/html"
    )
    url = feed_server.set(
        "/feed.xml", status=302, headers={"Location": "/apology_objects/abuse-detection-apology.html"}
    )
    async with Fetcher.new_session() as session:
        result, _ = await poll_source(rss_source(url), quick(session), FeedState("cisa"))
    assert not result.ok and "HTML page instead of a feed" in (result.error or "")


async def test_size_cap(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED)
    async with Fetcher.new_session() as session:
        result, _ = await poll_source(rss_source(url, max_bytes=4096), quick(session), FeedState("cisa"))
    assert not result.ok and "size cap" in (result.error or "")


async def test_suddenly_empty_feed_is_a_failure(feed_server: FeedServer) -> None:
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    url = feed_server.set("/feed.xml", body=empty)
    async with Fetcher.new_session() as session:
        fresh = await poll_rss(rss_source(url), quick(session), FeedState("cisa"))
        assert fresh.ok and fresh.advisories == ()
        with pytest.raises(SourceError, match="suddenly empty"):
            await poll_rss(rss_source(url), quick(session), FeedState("cisa", items=47))


async def test_connection_refused_names_the_problem() -> None:
    async with Fetcher.new_session() as session:
        result, _ = await poll_source(rss_source(closed_port_url()), quick(session), FeedState("cisa"))
    assert not result.ok and "cannot connect to 127.0.0.1" in (result.error or "")


async def test_malformed_xml_is_a_failure(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=b"<?xml version='1.0'?><rss><channel><item><title>x</ti")
    async with Fetcher.new_session() as session:
        result, _ = await poll_source(rss_source(url), quick(session), FeedState("cisa"))
    assert not result.ok


async def test_include_exclude_filters(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED)
    async with Fetcher.new_session() as session:
        result, _ = await poll_source(
            rss_source(url, include=("dicom",), exclude=("viewer",)), quick(session), FeedState("cisa")
        )
    titles = [a.title for a in result.advisories]
    assert titles and all("dicom" in (t + a.summary).lower() for t, a in zip(titles, result.advisories, strict=True))
    assert not any("viewer" in (a.title + a.summary).lower() for a in result.advisories)


@pytest.mark.parametrize(("value", "expected"), [("120", 120.0), (None, None), ("soon", None)])
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


async def test_a_real_feed_labelled_text_html_is_still_a_feed(feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=FEED, content_type="text/html")
    async with Fetcher.new_session() as session:
        result = await poll_rss(rss_source(url), quick(session), FeedState("cisa"))
    assert len(result.advisories) == 47
