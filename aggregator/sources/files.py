"""Advisory files on disk, recognised by content (for `scan` and local CSAF folders). Read-only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aggregator.errors import ParseError
from aggregator.models import Advisory, SourceKind
from aggregator.sources.csaf import is_csaf, parse_csaf
from aggregator.sources.openfda import is_not_found, is_openfda, parse_openfda
from aggregator.sources.rss import is_feed, parse_rss

MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileRead:
    """The outcome of reading one file: advisories, or skipped (no known kind), or unreadable (error)."""

    path: Path
    kind: SourceKind | None
    advisories: tuple[Advisory, ...] = ()
    error: str | None = None

    @property
    def skipped(self) -> bool:
        return self.kind is None and self.error is None


def walk(paths: list[Path]) -> Iterator[Path]:
    """Every regular file given, or found recursively under a given folder, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def read_advisory_file(path: Path, *, source: str | None = None) -> FileRead:
    """Recognise a file's kind by its content and parse it; never raises for bad content."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return FileRead(path, None, error=f"larger than {MAX_FILE_BYTES} bytes")
        body = path.read_bytes()
    except OSError as exc:
        return FileRead(path, None, error=f"cannot read: {exc.strerror or exc}")
    return read_advisory_bytes(body, path=path, source=source)


def read_advisory_bytes(body: bytes, *, path: Path, source: str | None = None) -> FileRead:
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return _read_json(body, path, source)
    if is_feed(body):
        try:
            return FileRead(path, SourceKind.RSS, tuple(parse_rss(body, source=source or "rss")))
        except ParseError as exc:
            return FileRead(path, SourceKind.RSS, error=str(exc))
    return FileRead(path, None)


def _read_json(body: bytes, path: Path, source: str | None) -> FileRead:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = _guess_json_kind(body)
        return FileRead(path, None) if kind is None else FileRead(path, kind, error=f"invalid JSON: {exc}")
    try:
        if is_csaf(doc):
            return FileRead(path, SourceKind.CSAF, (parse_csaf(body, source=source or "csaf"),))
        if is_openfda(doc) or is_not_found(doc):
            return FileRead(path, SourceKind.OPENFDA, tuple(parse_openfda(body, source=source or "openfda")))
    except ParseError as exc:
        return FileRead(path, SourceKind.CSAF if is_csaf(doc) else SourceKind.OPENFDA, error=str(exc))
    return FileRead(path, None)


def _guess_json_kind(body: bytes) -> SourceKind | None:
    """For JSON that does not parse: does it still look like a kind we know?"""
    head = body[:65536]
    if b'"csaf_version"' in head:
        return SourceKind.CSAF
    if b'"meta"' in head and (b'"product_res_number"' in head or b'"recall_number"' in head):
        return SourceKind.OPENFDA
    return None
