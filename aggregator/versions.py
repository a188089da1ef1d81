"""Vendor version strings and the version expressions advisories publish. Pure.

Advisories write versions every way there is: CSAF ``vers:all/*`` and ``vers:generic/>=1.0|<2.0``,
CISA's ``<= 2.4A`` and ``9.13 | 9.19``, prose like "2.6A or lower", "prior to 8.2.2", "9.33 and
prior", "v20D29 to v20D32", "Version 5.x.x", and dates ("distributed before April 1, 2018") that
no firmware string can be compared with. `evaluate` answers True/False only when it understood the
whole expression; anything it cannot read is None, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

Part = tuple[int, int | str]  # (0, number) or (1, letters): numbers order before letters
Key = tuple[Part, ...]

_PREFIX_RE = re.compile(
    r"^(?:all\s+)?(?:software\s+|firmware\s+)?(?:versions?\b|vers?\b\.?|rev(?:ision)?\b\.?)\s*(?=[\w*<>=])", re.I
)
_V_PREFIX_RE = re.compile(r"^v(?=\d)", re.I)
_PART_RE = re.compile(r"\d+|[a-z]+", re.I)
_COMPONENT_SPLIT_RE = re.compile(r"[.\-_\s]+")
_ALL_RE = re.compile(
    r"^(?:vers:[a-z0-9.+-]*/\*|\*.*|all|all\s+(?:software\s+|firmware\s+)?versions?\b[^0-9]*|any\s+versions?)$",
    re.I,
)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DATE_RE = re.compile(
    rf"\b(?:{_MONTHS})\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b|"
    r"\b(?:manufactured|distributed|shipped|produced|sold)\b|_(?:19|20)\d\d\b",
    re.I,
)
# One version token: 2.4A, v20D29, B.06.18, 012U000040, BT03, 5.x.x, K (a bare revision letter)
_V = r"(?:v?\d[\w.\-]*|[a-z]{1,3}\.?\d[\w.\-]*|[a-z])"
_OPS = {"<": "<", "<=": "<=", "=<": "<=", ">": ">", ">=": ">=", "=>": ">=", "=": "=", "==": "=", "!=": "!="}
_OP_RE = re.compile(rf"^(<=|=<|>=|=>|==|!=|<|>|=)\s*({_V})(?:\s+(.*))?$", re.I)
_BEFORE_RE = re.compile(
    rf"^(?:prior\s+to|before|earlier\s+than|older\s+than|lower\s+than|less\s+than|below)\s+(?:version\s+)?({_V})$",
    re.I,
)
_UPTO_RE = re.compile(rf"^(?:up\s+to|through|until)\s+(?:and\s+including\s+)?(?:version\s+)?({_V})$", re.I)
_OR_LOWER_RE = re.compile(
    rf"^({_V})\s+(?:and|or|&)\s+(?:prior|earlier|lower|below|older|before|less)(?:\s+versions?)?$", re.I
)
_OR_HIGHER_RE = re.compile(
    rf"^({_V})\s+(?:and|or|&)\s+(?:later|higher|newer|above|greater|after)(?:\s+versions?)?$", re.I
)
_PLUS_RE = re.compile(rf"^({_V})\+$", re.I)
_BETWEEN_RE = re.compile(rf"^between\s+({_V})\s+and\s+({_V})$", re.I)
_RANGE_RE = re.compile(rf"^(?:from\s+)?({_V})\s+(?:to|through|thru|-|–|—)\s+(?:version\s+)?({_V})$", re.I)
_LETTER_RANGE_RE = re.compile(r"^([a-z])\s*-\s*([a-z])$", re.I)
_EXACT_RE = re.compile(rf"^({_V})$", re.I)
_LIST_SPLIT_RE = re.compile(r"\s*(?:,|;|\band\b|\bor\b|&)\s*", re.I)
_PAREN_RE = re.compile(r"\([^()]*\)")


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as vendor version `a` sorts before, with or after `b`.

    Components compare number to number and letters to letters (2.4A < 2.6A < 2.7A,
    8.2.1 < 8.2.2 < 8.10); a missing numeric component counts as 0 (8.2 == 8.2.0), a missing
    letter suffix sorts first (2.4 < 2.4A). A "v"/"Version" prefix is ignored.
    """
    return _compare(_key(a), _key(b))


def evaluate(firmware: str | None, expression: str) -> bool | None:
    """Whether `firmware` falls in the advisory's version `expression`.

    True: all versions are affected, or the firmware is in range. False: the firmware is outside
    every range the expression states. None: no firmware is configured and the range is limited,
    or the expression cannot be read. An empty expression states no limit (True).
    """
    parsed = _parse(expression)
    if parsed.all_versions:
        return True
    fw = (firmware or "").strip()
    if not fw:
        return None
    key = _key(fw)
    if not key:
        return None
    answer: bool | None = False
    for alternative in parsed.alternatives:
        got = alternative.contains(key)
        if got:
            return True
        if got is None:
            answer = None
    if parsed.unreadable:
        return None
    return answer


def is_all_versions(expression: str) -> bool:
    """True when the expression covers every version (``vers:all/*``, ``*``, "All versions", empty)."""
    return _parse(expression).all_versions


def looks_like_version(text: str) -> bool:
    """True when `text` reads as a version expression this module can evaluate (limited or all)."""
    parsed = _parse(text)
    return parsed.all_versions or (bool(parsed.alternatives) and not parsed.unreadable)


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bound:
    key: Key
    inclusive: bool
    wildcard: bool  # "5.x": only the first len(key) components are compared


@dataclass(frozen=True, slots=True)
class _Range:
    lo: _Bound | None
    hi: _Bound | None
    exact: bool = False
    holes: tuple[Key, ...] = ()  # vers "!=" points

    def contains(self, fw: Key) -> bool | None:
        if any(_compare(fw, hole) == 0 for hole in self.holes):
            return False
        if self.exact and self.lo is not None and _is_strict_prefix(fw, self.lo.key):
            return None  # "1.3.1" against "1.3.1 Build 13": the build is not known
        if self.lo is not None:
            c = _compare(_truncate(fw, self.lo), self.lo.key)
            if c < 0 or (c == 0 and not self.lo.inclusive):
                return False
        if self.hi is not None:
            c = _compare(_truncate(fw, self.hi), self.hi.key)
            if c > 0 or (c == 0 and not self.hi.inclusive):
                return False
        return True


@dataclass(frozen=True, slots=True)
class _Parsed:
    all_versions: bool
    alternatives: tuple[_Range, ...]
    unreadable: bool  # some part could not be read: a False answer would be a guess


@lru_cache(maxsize=4096)
def _parse(expression: str) -> _Parsed:
    text = " ".join((expression or "").split())
    if not text or _ALL_RE.match(text):
        return _Parsed(True, (), False)
    if text.lower().startswith("vers:"):
        return _parse_vers(text)
    text = _strip_parentheticals(text)
    if not text:
        return _Parsed(False, (), True)
    ranges: list[_Range] = []
    unreadable = False
    pieces = [p.strip() for p in text.split("|") if p.strip()]
    constraints = [_constraint(p) for p in pieces]
    if pieces and all(c is not None for c in constraints):
        # CISA writes ranges as ">= 1.0.0 | <= 1.1.1": pair bounds the way `vers:` does
        ranges.extend(_pair([c for c in constraints if c is not None]))
        return _Parsed(False, tuple(ranges), False)
    for piece in pieces:
        if _ALL_RE.match(piece):
            return _Parsed(True, (), False)
        got = _parse_piece(piece)
        if got is None:
            unreadable = True
        else:
            ranges.extend(got)
    return _Parsed(False, tuple(ranges), unreadable or not ranges)


def _parse_vers(text: str) -> _Parsed:
    """``vers:<scheme>/<constraint>|<constraint>...`` (the package-url VERS syntax)."""
    _, _, body = text.partition("/")
    constraints = []
    for raw in body.split("|"):
        raw = raw.strip()
        if not raw:
            continue
        if raw == "*":
            return _Parsed(True, (), False)
        m = re.match(r"^(<=|>=|!=|<|>|=)?\s*(.+)$", raw)
        if not m:
            return _Parsed(False, (), True)
        constraints.append((m.group(1) or "=", _bound(m.group(2), m.group(1) in (None, "=", "<=", ">="))))
    excluded = tuple(b.key for op, b in constraints if op == "!=")
    ranges = _pair([(op, b) for op, b in constraints if op != "!="])
    if not ranges and excluded:
        ranges = [_Range(None, None)]  # "vers:generic/!=1.2": everything but 1.2
    return _Parsed(False, tuple(_Range(r.lo, r.hi, r.exact, excluded) for r in ranges), False)


def _constraint(piece: str) -> tuple[str, _Bound] | None:
    """An operator constraint (">= 1.0.0") or a bare version ("9.13") with nothing after it."""
    piece = _clean(piece)
    m = _OP_RE.match(piece)
    if m and not m.group(3):
        op = _OPS[m.group(1)]
        return op, _bound(m.group(2), op in ("<=", ">=", "="))
    m = _EXACT_RE.match(piece)
    if m and _is_version_token(m.group(1)):
        return "=", _line(m.group(1))
    return None


def _pair(constraints: list[tuple[str, _Bound]]) -> list[_Range]:
    """Lower bounds pair with the next upper bound; exact versions stand alone."""
    ranges: list[_Range] = []
    pending: _Bound | None = None
    for op, bound in constraints:
        if op in (">", ">="):
            if pending is not None:
                ranges.append(_Range(pending, None))
            pending = bound
        elif op in ("<", "<="):
            ranges.append(_Range(pending, bound))
            pending = None
        else:
            ranges.append(_Range(bound, bound, exact=True))
    if pending is not None:
        ranges.append(_Range(pending, None))
    return ranges


def _parse_piece(piece: str) -> list[_Range] | None:
    """One alternative in prose; None when it is not understood."""
    piece = _clean(piece)
    if not piece or _DATE_RE.search(piece):
        return None
    single = _parse_single(piece)
    if single is not None:
        return [single]
    # "1.1, 1.5 and 1.6": a list of versions, each readable on its own
    items = [i for i in _LIST_SPLIT_RE.split(piece) if i]
    if len(items) > 1:
        parsed = [_parse_single(_clean(i)) for i in items]
        if all(p is not None for p in parsed):
            return [p for p in parsed if p is not None]
    return None


def _parse_single(piece: str) -> _Range | None:
    m = _OP_RE.match(piece)
    if m:
        tail = m.group(3) or ""
        if tail and not re.match(r"^(?:model|build)\b", tail, re.I) and re.search(r"\d", tail):
            return None  # "<=11.2 on Windows 8.1": more versions follow, the bound is not clear
        op = _OPS[m.group(1)]
        bound = _bound(m.group(2), op in ("<=", ">=", "="))
        if op in ("<", "<="):
            return _Range(None, bound)
        if op in (">", ">="):
            return _Range(bound, None)
        return _Range(bound, bound, exact=True) if op == "=" else None
    for regex, kind in (
        (_BEFORE_RE, "<"),
        (_UPTO_RE, "<="),
        (_OR_LOWER_RE, "<="),
        (_OR_HIGHER_RE, ">="),
        (_PLUS_RE, ">="),
    ):
        m = regex.match(piece)
        if m and _is_version_token(m.group(1)):
            bound = _bound(m.group(1), kind != "<")
            return _Range(None, bound) if kind.startswith("<") else _Range(bound, None)
    for regex in (_BETWEEN_RE, _RANGE_RE, _LETTER_RANGE_RE):
        m = regex.match(piece)
        if m and _is_version_token(m.group(1)) and _is_version_token(m.group(2)):
            return _Range(_bound(m.group(1), True), _bound(m.group(2), True))
    m = _EXACT_RE.match(piece)
    if m and _is_version_token(m.group(1)):
        bound = _line(m.group(1))
        return _Range(bound, bound, exact=True)
    return None


def _clean(piece: str) -> str:
    piece = piece.strip().strip(".,;:").strip()
    for _ in range(3):  # "Software Version v2.1", "Versions 3.0"
        stripped = _PREFIX_RE.sub("", piece, count=1).strip()
        if stripped == piece:
            break
        piece = stripped
    piece = re.sub(r"\s+model\b.*$", "", piece, flags=re.I)  # "9.x model 35700BAX3"
    return piece.strip()


def _strip_parentheticals(text: str) -> str:
    """Drop "(integrated into GE MobileLink)" and an unclosed "(with Wireless Battery Modules ..."."""
    previous = None
    while previous != text:
        previous = text
        text = _PAREN_RE.sub(" ", text)
    if "(" in text:
        text = text[: text.index("(")]
    return " ".join(text.replace(")", " ").split())


def _is_version_token(token: str) -> bool:
    token = token.strip()
    if len(token) == 1:
        return token.isalnum()
    return bool(re.search(r"\d", token)) and not re.fullmatch(r"[a-z]{4,}\d*", token, re.I)


# --- keys and comparison ---------------------------------------------------------------------


def _bound(text: str, inclusive: bool) -> _Bound:
    key, wildcard = _key_and_wildcard(text)
    return _Bound(key, inclusive, wildcard)


def _line(text: str) -> _Bound:
    """A version listed on its own: "9.33" stands for the 9.33 line, so 9.33.1 is in it."""
    return _Bound(_key(text), True, True)


@lru_cache(maxsize=8192)
def _key_and_wildcard(text: str) -> tuple[Key, bool]:
    text = _clean(text.strip())
    text = _V_PREFIX_RE.sub("", text)
    components = [c for c in _COMPONENT_SPLIT_RE.split(text) if c]
    wildcard = False
    kept: list[str] = []
    for comp in components:
        if comp.lower() in ("x", "*"):
            wildcard = True
            break
        kept.append(comp)
    parts: list[Part] = []
    for comp in kept:
        for piece in _PART_RE.findall(comp):
            parts.append((0, int(piece)) if piece.isdigit() else (1, piece.lower()))
    return tuple(parts), wildcard


def _key(text: str) -> Key:
    return _key_and_wildcard(text)[0]


def _truncate(fw: Key, bound: _Bound) -> Key:
    return fw[: len(bound.key)] if bound.wildcard else fw


def _starts_numeric(key: Key) -> bool:
    return bool(key) and key[0][0] == 0


def _letter_then_number(key: Key) -> bool:
    return len(key) > 1 and key[0][0] == 1 and key[1][0] == 0


def _is_strict_prefix(short: Key, long: Key) -> bool:
    tail = long[len(short) :]
    return len(short) < len(long) and long[: len(short)] == short and any(p != (0, 0) for p in tail)


def _compare(a: Key, b: Key) -> int:
    # "R8.0.3" / "VM5.0" against "8.1": a release-letter prefix on one side only is not a component
    if _starts_numeric(a) and _letter_then_number(b):
        b = b[1:]
    elif _starts_numeric(b) and _letter_then_number(a):
        a = a[1:]
    for i in range(max(len(a), len(b))):
        pa = a[i] if i < len(a) else None
        pb = b[i] if i < len(b) else None
        if pa == pb:
            continue
        if pa is None or pb is None:
            if (pb if pa is None else pa) == (0, 0):
                continue  # 8.2 == 8.2.0
            return -1 if pa is None else 1  # 8.2 < 8.2.1, 2.4 < 2.4A
        if pa[0] != pb[0]:
            return -1 if pa[0] < pb[0] else 1
        return -1 if pa[1] < pb[1] else 1  # type: ignore[operator]
    return 0
