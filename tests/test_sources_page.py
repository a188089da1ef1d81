"""Manufacturer security pages (aggregator.sources.page), parsed alone and polled from the local feed server.

tests/fixtures/page/manufacturer-security.html and manufacturer-security-redesigned.html are written for
these tests in the style of manufacturers' HTML security pages (design/sources.md §2.7: a table of
bulletins with publication dates, nav and policy links around it, a `;jsessionid=` link, a PDF linked
through an image). No real manufacturer page is recorded in the corpus; the names are made up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config import SourceConfig
from aggregator.errors import BlockedError, SourceError
from aggregator.models import FeedState, PollResult, SourceKind
from aggregator.sources import poll_source
from aggregator.sources.http import Fetcher
from aggregator.sources.page import normalise_url, parse_page, poll_page
from tests.conftest import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "page"
PATTERN = r"/security/bulletins/|security[- ]bulletin"
PAGE_PATH = "/en/product-security.html"
BASE = "https://www.example-medical.test/en/product-security.html"


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher.new_session() as session:
        yield Fetcher(session, attempts=2, backoff_initial=0.01, max_retry_wait=1)


def page(name: str = "manufacturer-security.html") -> bytes:
    return (FIXTURES / name).read_bytes()


def page_source(url: str, pattern: str = PATTERN) -> SourceConfig:
    return SourceConfig(
        name="example-medical", kind=SourceKind.PAGE, url=url, interval=86400, pattern=pattern
    )


def after(state: FeedState, result: PollResult) -> FeedState:
    assert result.ok, result.error
    return replace(
        state,
        etag=result.etag,
        last_modified=result.last_modified,
        last_success=datetime.now(UTC),
        cursor=result.cursor if result.cursor is not None else state.cursor,
        items=state.items if result.not_modified else len(result.advisories),
    )


def test_parse_page_picks_the_bulletin_links() -> None:
    advisories = parse_page(page(), source="example-medical", base_url=BASE, pattern=PATTERN)

    assert [a.entry_id for a in advisories] == [
        "https://www.example-medical.test/security/bulletins/cms8000-patient-monitor?lang=en",
        "https://www.example-medical.test/en/security/bulletins/vue-pacs.html",
        "https://www.example-medical.test/security/bulletins/minimed-508",
        "https://www.example-medical.test/downloads/Security-Bulletin-2023-04.pdf",
    ]
    contec, pacs, minimed, pdf = advisories
    assert contec.title == "CMS8000 patient monitor: undocumented remote access (ICSMA-25-030-01)"
    assert contec.advisory_id == "ICSMA-25-030-01"
    assert (
        contec.url
        == "https://www.example-medical.test/security/bulletins/cms8000-patient-monitor?lang=en#summary"
    )
    assert "ICSMA-25-030-01" in contec.identifiers
    assert pacs.title == "Vue PACS & viewer vulnerabilities" and pacs.advisory_id is None
    assert minimed.title == "Security bulletin: MiniMed 508 insulin pump"  # not the later "details" link
    assert pdf.title == "Security bulletin April 2023 (PDF)"  # the image's alt text
    assert all(a.kind is SourceKind.PAGE and a.published is None for a in advisories)


def test_pattern_is_case_insensitive_and_reads_link_text() -> None:
    advisories = parse_page(page(), source="s", base_url=BASE, pattern="MINIMED")
    assert [a.title for a in advisories] == ["Security bulletin: MiniMed 508 insulin pump"]


def test_pattern_does_not_match_the_site_host() -> None:
    # every link on the maker's site has "example-medical" in its absolute URL, none in its href
    assert parse_page(page(), source="s", base_url=BASE, pattern="example-medical") == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.test/a;jsessionid=ABC123?x=1#frag", "https://example.test/a?x=1"),
        ("https://example.test/a/b;JSESSIONID=0f0f/c.html", "https://example.test/a/b/c.html"),
        ("https://example.test", "https://example.test/"),
        ("https://example.test/x?nn=2#", "https://example.test/x?nn=2"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_base_href_and_declared_charset() -> None:
    body = (
        '<html><head><meta charset="iso-8859-1"><base href="https://cdn.example.test/psirt/"></head>'
        '<body><a href="bulletin-7.html">Sicherheitshinweis f\xfcr Ger\xe4te</a></body></html>'
    ).encode("iso-8859-1")
    [advisory] = parse_page(body, source="s", base_url="https://www.example.test/", pattern="bulletin")
    assert advisory.url == "https://cdn.example.test/psirt/bulletin-7.html"
    assert advisory.title == "Sicherheitshinweis für Geräte"


async def test_poll_page_then_unchanged_page(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.set(PAGE_PATH, body=page(), content_type="text/html")  # HTML is the point here
    source = page_source(url)

    first, _ = await poll_source(source, fetcher, FeedState("example-medical"))

    assert first.ok, first.error
    root = feed_server.url("")
    assert [a.entry_id for a in first.advisories] == [
        f"{root}/security/bulletins/cms8000-patient-monitor?lang=en",
        f"{root}/en/security/bulletins/vue-pacs.html",
        f"{root}/security/bulletins/minimed-508",
        f"{root}/downloads/Security-Bulletin-2023-04.pdf",
    ]
    state = after(FeedState("example-medical"), first)

    again = await poll_page(source, fetcher, state)
    assert again.advisories == first.advisories

    # with an ETag the unchanged page costs a 304
    feed_server.set(PAGE_PATH, body=page(), content_type="text/html", etag='"v1"')
    state = after(state, await poll_page(source, fetcher, state))
    cached = await poll_page(source, fetcher, state)
    assert cached.not_modified and cached.ok
    assert feed_server.hits(PAGE_PATH)[-1].get("If-None-Match") == '"v1"'


async def test_page_that_stops_matching_fails(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.set(PAGE_PATH, body=page(), content_type="text/html")
    source = page_source(url)
    state = after(
        FeedState("example-medical"), await poll_page(source, fetcher, FeedState("example-medical"))
    )

    feed_server.set(PAGE_PATH, body=page("manufacturer-security-redesigned.html"), content_type="text/html")
    result, _ = await poll_source(source, fetcher, state)

    assert not result.ok
    assert "matched 4 links before and matches none now (page layout changed?)" in (result.error or "")


async def test_pattern_that_never_matched_fails(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.set(PAGE_PATH, body=page(), content_type="text/html")
    with pytest.raises(SourceError, match="matches no link"):
        await poll_page(page_source(url, pattern=r"/advisories/\d+"), fetcher, FeedState("example-medical"))


async def test_akamai_apology_redirect_is_blocked(feed_server: FeedServer, fetcher: Fetcher) -> None:
    apology = "/apology_objects/abuse-detection-apology.html"
    feed_server.set(apology, body=b"<html><body>Access Denied</body></html>", content_type="text/html")
    url = feed_server.set(PAGE_PATH, status=302, headers={"Location": apology}, content_type="text/html")
    with pytest.raises(BlockedError, match="apology"):
        await poll_page(page_source(url), fetcher, FeedState("example-medical"))
