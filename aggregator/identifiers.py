"""Identifiers found in advisory text: CISA advisory ids, CVEs, FDA recall numbers. Pure."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime

# ICSMA-19-178-01, ICSA-24-023-05, ICSMA-17-009-01A (a trailing letter marks a revision)
ADVISORY_ID_RE = re.compile(r"\b(ICS[MA]{1,2}-\d{2}-\d{3}-\d{2}[A-Z]?)\b", re.IGNORECASE)
CVE_RE = re.compile(r"\bCVE-\d{4}-\d{4,7}\b", re.IGNORECASE)
CWE_RE = re.compile(r"\bCWE-\d{1,5}\b", re.IGNORECASE)
# FDA recall numbers: Z-1811-2022 (devices); older ones carry a two-digit year (Z-1004-04)
RECALL_RE = re.compile(r"\bZ-\d{4}-(?:\d{4}|\d{2})\b", re.IGNORECASE)
_REVISION_SUFFIX_RE = re.compile(r"^(ICS[MA]{1,2}-\d{2}-\d{3}-\d{2})[A-Z]$")
_TAG_RE = re.compile(r"<[^>]+>")
_INLINE_TAG_RE = re.compile(r"(?i)</?(?:strong|b|em|i|span|a|code|abbr|sup|sub)(?:\s[^>]*)?>")
_WS_RE = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES_RE = re.compile(r"\n\s*\n+")


def advisory_ids(text: str) -> list[str]:
    """CISA advisory ids in `text`, upper-cased, in order of first appearance."""
    return unique(m.upper() for m in ADVISORY_ID_RE.findall(text or ""))


def cve_ids(text: str) -> list[str]:
    return unique(m.upper() for m in CVE_RE.findall(text or ""))


def cwe_ids(text: str) -> list[str]:
    return unique(m.upper() for m in CWE_RE.findall(text or ""))


def recall_numbers(text: str) -> list[str]:
    return unique(m.upper() for m in RECALL_RE.findall(text or ""))


def all_identifiers(*texts: str) -> frozenset[str]:
    """Every advisory id, CVE and recall number in the given texts."""
    found: set[str] = set()
    for text in texts:
        found.update(advisory_ids(text))
        found.update(cve_ids(text))
        found.update(recall_numbers(text))
    return frozenset(found)


def event_id_of(advisory_id: str) -> str:
    """The event an advisory id belongs to: ICSMA-17-009-01A and ICSMA-17-009-01 are one event."""
    upper = advisory_id.strip().upper()
    m = _REVISION_SUFFIX_RE.match(upper)
    return m.group(1) if m else upper


def html_to_text(markup: str) -> str:
    """Plain text from a feed's HTML description: tags dropped, entities decoded, spaces folded."""
    if not markup:
        return ""
    text = re.sub(r"(?i)<\s*(br|/p|/div|/li|/h\d|/tr)\s*/?>", "\n", markup)
    text = _INLINE_TAG_RE.sub("", text)
    text = html.unescape(_TAG_RE.sub(" ", text))
    text = "\n".join(_WS_RE.sub(" ", line).strip() for line in text.splitlines())
    return _BLANK_LINES_RE.sub("\n", text).strip()


def parse_datetime(value: str | None) -> datetime | None:
    """An ISO 8601 or YYYYMMDD date/time as tz-aware UTC; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        if re.fullmatch(r"\d{8}", value):
            return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def unique(items: Iterable[str]) -> list[str]:
    """Non-empty items, first occurrence kept, in order."""
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)
