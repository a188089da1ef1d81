"""Manufacturer security pages with no feed: every bulletin link the source's pattern picks is an advisory.

The cursor (JSON) is `{"links": N}`: how many links the pattern matched last time, so a page that suddenly
matches nothing fails the poll ("page layout changed?") rather than passing as an empty success.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from aggregator.config import SourceConfig
from aggregator.errors import BlockedError, SourceError
from aggregator.identifiers import advisory_ids, all_identifiers
from aggregator.models import Advisory, FeedState, FetchResult, PollResult, SourceKind
from aggregator.sources.http import Fetcher, fetch_source

TITLE_CAP = 300
_JSESSIONID_RE = re.compile(r";jsessionid=[^/?#]*", re.IGNORECASE)
_WS_RE = re.compile(r"\s+")
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SKIPPED_SCHEMES = ("javascript:", "mailto:", "tel:", "data:")


class _Links(HTMLParser):
    """Collects (href, text) for every <a href>, and the page's <base href>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._title = ""
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        elif tag == "a":
            self._close()
            href = (values.get("href") or "").strip()
            self._href, self._title, self._text = (href or None), values.get("title") or "", []
        elif tag == "img" and self._href is not None and values.get("alt"):
            self._text.append(values["alt"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close()

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._close()  # an <a> left open at the end of the page

    def _close(self) -> None:
        if self._href is not None:
            text = _WS_RE.sub(" ", "".join(self._text)).strip() or _WS_RE.sub(" ", self._title).strip()
            self.links.append((self._href, text))
        self._href = None


def parse_page(body: bytes, *, source: str, base_url: str, pattern: str, charset: str | None = None) -> list[Advisory]:
    """The links whose href or text matches `pattern` (case-insensitive), one Advisory each, in page order.

    The href is matched as written and as the resolved path and query, never with the host: a pattern
    naming the maker would otherwise pick every link on the maker's own site.
    """
    parser = _Links()
    parser.feed(_decode(body, charset))
    parser.close()
    wanted = re.compile(pattern, re.IGNORECASE)
    base = urljoin(base_url, parser.base) if parser.base else base_url
    found: dict[str, Advisory] = {}
    for href, text in parser.links:
        if href.startswith("#") or href.lower().startswith(_SKIPPED_SCHEMES):
            continue
        absolute = urljoin(base, href)
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https"):
            continue
        resolved = parts.path + (f"?{parts.query}" if parts.query else "")
        if not (wanted.search(href) or wanted.search(resolved) or wanted.search(text)):
            continue
        entry_id = normalise_url(absolute)
        if entry_id in found and found[entry_id].title != entry_id:
            continue  # the same bulletin linked twice: the first titled link wins
        ids = advisory_ids(f"{text} {href}")
        found[entry_id] = Advisory(
            source=source,
            kind=SourceKind.PAGE,
            entry_id=entry_id,
            advisory_id=ids[0] if ids else None,
            title=(text or entry_id)[:TITLE_CAP],
            url=_JSESSIONID_RE.sub("", absolute),
            published=None,
            identifiers=all_identifiers(text, href),
        )
    return list(found.values())


def normalise_url(url: str) -> str:
    """A link as an identity: no fragment, no `;jsessionid=`, lower-case scheme and host."""
    parts = urlsplit(_JSESSIONID_RE.sub("", url.strip()))
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


async def poll_page(source: SourceConfig, fetcher: Fetcher, state: FeedState) -> PollResult:
    """Fetch the page (conditional GET) and pick its bulletin links; matching nothing is a failure."""
    result = await fetch_source(fetcher, source, state, accept="text/html, application/xhtml+xml;q=0.9, */*;q=0.1")
    if result.not_modified:
        return PollResult(
            source.name,
            not_modified=True,
            etag=state.etag,
            last_modified=state.last_modified,
            cursor=state.cursor,
        )
    if "apology" in result.url:  # the page is HTML anyway: only Akamai's apology redirect gives a block away
        raise BlockedError(f"redirected to a CDN block page ({result.url})")
    advisories = parse_page(
        result.body or b"",
        source=source.name,
        base_url=result.url or source.url or "",
        pattern=source.pattern or "",
        charset=_charset(result),
    )
    if not advisories:
        before = _links_before(state)
        if before:
            raise SourceError(f"the pattern matched {before} links before and matches none now (page layout changed?)")
        raise SourceError("the pattern matches no link on the page (check the pattern and the URL)")
    return PollResult(
        source.name,
        tuple(advisories),
        etag=result.etag,
        last_modified=result.last_modified,
        cursor=json.dumps({"links": len(advisories)}),
    )


def _links_before(state: FeedState) -> int:
    try:
        raw = json.loads(state.cursor or "{}")
    except ValueError:
        raw = {}
    links = raw.get("links") if isinstance(raw, dict) else None
    return links if isinstance(links, int) and links > 0 else state.items


def _decode(body: bytes, charset: str | None) -> str:
    """HTML bytes as text: a BOM, else the HTTP charset, else a <meta charset>, else UTF-8."""
    if body.startswith(b"\xef\xbb\xbf"):
        return body[3:].decode("utf-8", errors="replace")
    match = _META_CHARSET_RE.search(body[:4096])
    for candidate in (charset, match.group(1).decode("ascii") if match else None):
        if candidate:
            try:
                return body.decode(candidate, errors="replace")
            except LookupError:
                continue
    return body.decode("utf-8", errors="replace")


def _charset(result: FetchResult) -> str | None:
    for part in result.content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None
