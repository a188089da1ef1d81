"""Which advisories concern which watched devices, and whether the configured firmware is affected. Pure.

Advisories are messy: one manufacturer goes by many names (and by the names of companies it bought),
model numbers come in lists ("Paradigm 522/722", "MMT-522 / MMT-722"), ranges ("MX400-MX850"),
series ("Paradigm x12"), with variant suffixes that are different models ("754CM" is not "754"),
and some products are named only as a family ("Alaris PC Unit"). The rules, in short:

* The manufacturer must match: the product's vendor (or, for items without products, the text)
  names the watched manufacturer, an alias of it, or a company it acquired (manufacturers.toml).
* A model matches through a model number (exact, in a list, range or series), or by name: all the
  watched model's words appear in the product, or the product is the family of the watched model
  (its words are a subset of the watched model's) and names no other model number.
* Generic words ("pump", "monitor", "system", "software") never make a match on their own.
* Items without products (RSS, FDA recalls) are matched on title and summary the same way, with
  a short look-around for family names so that "Alaris PC Unit 8015" does not match "Alaris 8000".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

__all__ = ["ManufacturerAliases", "load_aliases", "manufacturers_of", "match_advisory", "match_all", "model_tokens"]

from aggregator.identifiers import ADVISORY_ID_RE, CVE_RE, CWE_RE, RECALL_RE
from aggregator.manufacturers import ManufacturerAliases, load_aliases, manufacturers_of
from aggregator.manufacturers import contains_words as _contains_words
from aggregator.manufacturers import core_key as _core_key
from aggregator.manufacturers import fold as _fold
from aggregator.manufacturers import name_key as _name_key
from aggregator.manufacturers import word_set as _word_set
from aggregator.models import Advisory, Match, Product, SourceKind, WatchedDevice
from aggregator.versions import evaluate, is_all_versions, looks_like_version

# --- model tokens ----------------------------------------------------------------------------

_WORD, _ID, _VER = 0, 1, 2

_GENERIC = _word_set(
    """
    A AN THE AND OR WITH WITHOUT FOR OF ALL ONLY INCLUDING INCLUDES NOT NEW OTHER USED USE TO IN ON BY
    AT FROM AS IS ARE BE BEEN MAY CAN THAT THIS THESE THOSE ITS IT NO NUMBER TYPE EDITION GENERATION
    VIA PER PUMP PUMPS MONITOR MONITORS MONITORING SYSTEM SYSTEMS SERIES SOFTWARE DEVICE DEVICES UNIT
    UNITS MODEL MODELS VERSION VERSIONS MODULE MODULES CONTROLLER CONTROLLERS REMOTE PROGRAMMER
    PROGRAMMERS STATION STATIONS SERVER SERVERS APPLICATION APPLICATIONS APP APPS MOBILE ANDROID IOS
    WEB CLOUD PRODUCT PRODUCTS FAMILY FAMILIES PLATFORM PLATFORMS FIRMWARE HARDWARE KIT KITS HANDHELD
    PATIENT PATIENTS MEDICAL INFUSION INSULIN SYRINGE WIRELESS WIFI WI FI WLAN LAN NETWORK NETWORKED
    HUB READER READERS TRANSMITTER TRANSMITTERS RECEIVER RECEIVERS VENTILATOR VENTILATORS BED BEDS
    SCANNER SCANNERS IMAGING ULTRASOUND DEFIBRILLATOR DEFIBRILLATORS PACEMAKER PACEMAKERS ANALYZER
    ANALYZERS VIEWER VIEWERS SOLUTION SOLUTIONS SUITE TOOL TOOLS SERVICE SERVICES UTILITY DATA DATABASE
    MANAGEMENT HEALTHCARE HEALTH DIABETES BLOOD GLUCOSE METER METERS SENSOR SENSORS INC LTD CORP CO LLC
    AG GMBH US USA UNITED STATES OUTSIDE AFFECTED VULNERABILITY VULNERABILITIES UPDATE RECALL RECALLS
    RECALLED CORRECTION ISSUES ISSUE DUE RISK RISKS POTENTIAL CERTAIN CYBERSECURITY SECURITY FDA CLASS
    MODELS TECHNOLOGY TECHNOLOGIES COMPUTER WORKSTATION WORKSTATIONS EQUIPMENT INSTRUMENT INSTRUMENTS
    MACHINE MACHINES SET SETS TERMINAL ACCESSORY ACCESSORIES COMPONENT COMPONENTS OPTION
    """
)
# A family word's phrase ends at these in running text: "Paradigm and 508 MiniMed pumps" is two products.
_PHRASE_STOP = _word_set(
    """
    AND OR WITH WITHOUT USED FOR TO BY FROM DUE THAT WHICH WHEN IF BUT NOR VIA
    """
)
_STRONG_BOUNDARY = re.compile(r"[.;:|\n!?]")
_RUN_RE = re.compile(r"[A-Za-z0-9]+")
_OPTIONAL_SUFFIX_RE = re.compile(r"\(([A-Za-z]{1,2})\)")
_SERIES_X_RE = re.compile(r"^x(\d{1,3})$")  # "Paradigm x12": 512, 712 (lower-case x only; X2 is a model)
_SERIES_MID_RE = re.compile(r"^(\d+)x(\d+)$")  # "IGS 5x0"
_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
)
_NOISE_RE = re.compile(
    "|".join(
        (
            ADVISORY_ID_RE.pattern,
            CVE_RE.pattern,
            CWE_RE.pattern,
            RECALL_RE.pattern,
            rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",
            rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\s+\d{{4}}\b",
            rf"\b{_MONTH}\s+\d{{4}}\b",
            r"\b\d{4}-\d{2}-\d{2}\b",
            r"\b\d{1,2}/\d{1,2}/\d{2,4}\b",
            r"\b\d{1,3}(?:,\d{3})+\b",
            r"\bCVSS\s*v?\d(?:\.\d)?\s*(?:base\s+score)?\s*:?\s*\d+(?:\.\d)?",
            r"\bvers:\S+",
        )
    ),
    re.IGNORECASE,
)
# CISA section numbers ("1. EXECUTIVE SUMMARY", "3.1 AFFECTED PRODUCTS") are not model numbers
_SECTION_NUMBER_RE = re.compile(r"^[ \t]*(?:\d+\.(?:\d+\.?)*)(?=[ \t]+[A-Z])", re.MULTILINE)


@dataclass(slots=True)
class _Tok:
    """One word, model id or version-like run of a product name or text."""

    kind: int
    norm: str  # upper-case word, or the id's prefix+core ("MMT522", "508")
    surface: str
    start: int
    end: int
    sep: str = ""  # the characters before this token
    prefix: str = ""
    core: str = ""
    lo: int | None = None  # a range "MX400-MX850": prefix MX, 400..850
    hi: int | None = None
    series: re.Pattern[str] | None = None
    prev_word: str = ""  # a short code before a bare number: "MX 40"
    variants: tuple[str, ...] = ()  # "523(K)": also 523K
    mfr: bool = False
    in_version: bool = False

    def cores(self) -> tuple[str, ...]:
        return (self.core, *self.variants)


def _is_dotted(text: str, start: int, end: int) -> bool:
    """Part of a dotted version such as 2.4A, 8.2.2, 3.0T or 5.x."""
    before = text[start - 2 : start] if start >= 2 else ""
    after = text[end : end + 2]
    run_has_digit = any(c.isdigit() for c in text[start:end])
    if len(before) == 2 and before[1] == "." and before[0].isdigit() and (run_has_digit or text[start] in "xX"):
        return True
    return len(after) == 2 and after[0] == "." and run_has_digit and (after[1].isdigit() or after[1] in "xX")


def _folded(text: str) -> str:
    return _fold(text).replace("™", " ").replace("®", " ").replace("©", " ")


def _clean_text(text: str) -> str:
    """Folded text with ids, CVEs, dates and counts blanked out (same length, so offsets still hold)."""
    text = _folded(text)
    text = _SECTION_NUMBER_RE.sub(lambda m: ";" + " " * (len(m.group(0)) - 1), text)
    return _NOISE_RE.sub(lambda m: ";" + " " * (len(m.group(0)) - 1), text)


@lru_cache(maxsize=16384)
def _tokenize(text: str) -> tuple[_Tok, ...]:
    """Words and model ids of `text` with lists, ranges, series and optional suffixes expanded."""
    clean = _clean_text(text)
    tokens: list[_Tok] = []
    last_end = 0
    for m in _RUN_RE.finditer(clean):
        run, start, end = m.group(0), m.start(), m.end()
        sep = clean[last_end:start]
        last_end = end
        tokens.extend(_run_tokens(clean, run, start, end, sep, tokens))
    return tuple(_link_ids(clean, tokens))


def _run_tokens(text: str, run: str, start: int, end: int, sep: str, previous: list[_Tok]) -> list[_Tok]:
    if _is_dotted(text, start, end) or re.fullmatch(r"v\d+", run):
        return [_Tok(_VER, run.upper(), run, start, end, sep)]
    series = _series(run)
    if series is not None:
        return [_Tok(_ID, run.upper(), run, start, end, sep, core=run.upper(), series=series)]
    if not any(c.isdigit() for c in run):
        return [_Tok(_WORD, run.upper(), run, start, end, sep)]
    split = re.match(r"^([A-Za-z]+)(\d.*)$", run)
    if split and len(split.group(1)) > 4:  # "Minimed508": a name then a number
        word_end = start + len(split.group(1))
        word = _Tok(_WORD, split.group(1).upper(), split.group(1), start, word_end, sep)
        return [word, _id_tok(text, split.group(2), word_end, end, "", "")]
    if split:  # "MX40", "EX1150", "T1", "CMS8000"
        return [_id_tok(text, split.group(2), start, end, sep, split.group(1).upper(), surface=run)]
    prefix = ""
    prev = previous[-1] if previous else None
    if (
        prev is not None and prev.kind == _WORD and sep == "-" and len(prev.surface) <= 4 and prev.surface.isupper()
    ):  # "MMT-522", "CNS-6201": the code before the hyphen is part of the model number
        prefix = prev.norm
        previous.pop()
        return [_id_tok(text, run, prev.start, end, prev.sep, prefix, surface=f"{prev.surface}-{run}")]
    tok = _id_tok(text, run, start, end, sep, prefix)
    if prev is not None and prev.kind == _WORD and sep == " " and len(prev.surface) <= 3 and prev.surface.isupper():
        tok.prev_word = prev.norm  # "MX 40"
        tok.surface = f"{prev.surface} {run}"
    return [tok]


def _id_tok(text: str, core: str, start: int, end: int, sep: str, prefix: str, surface: str = "") -> _Tok:
    core = core.upper()
    variants: tuple[str, ...] = ()
    optional = _OPTIONAL_SUFFIX_RE.match(text, end)
    if optional:  # "MMT-523(K)": the plain and the K model
        variants = (core + optional.group(1).upper(),)
    return _Tok(_ID, prefix + core, surface or text[start:end], start, end, sep, prefix, core, variants=variants)


def _series(run: str) -> re.Pattern[str] | None:
    m = _SERIES_X_RE.match(run)
    if m:
        return re.compile(rf"^\d{m.group(1)}$")
    m = _SERIES_MID_RE.match(run)
    if m:
        return re.compile(rf"^{m.group(1)}\d{m.group(2)}$")
    return None


def _link_ids(text: str, tokens: list[_Tok]) -> list[_Tok]:
    """Slash lists inherit a prefix ("MX800/700") or leading digits ("865240/41"); "A-B" becomes a range."""
    out: list[_Tok] = []
    for tok in tokens:
        prev = out[-1] if out else None
        if tok.kind == _ID and prev is not None and prev.kind == _ID and tok.series is None and prev.series is None:
            sep = tok.sep.strip()
            if sep == "/" and not tok.prefix:
                _inherit(prev, tok)
            elif sep in ("-", "–") and prev.lo is None and _can_range(prev, tok):
                prev.lo, prev.hi = int(prev.core), int(tok.core)
                prev.end, prev.surface = tok.end, text[prev.start : tok.end]
                continue
        out.append(tok)
    return out


def _inherit(prev: _Tok, tok: _Tok) -> None:
    prev_digits = re.match(r"\d+", prev.core)
    tok_digits = re.match(r"\d+", tok.core)
    if prev_digits and tok_digits and len(tok_digits.group(0)) < len(prev_digits.group(0)):
        head = prev_digits.group(0)[: len(prev_digits.group(0)) - len(tok_digits.group(0))]
        tok.core = head + tok.core  # "M8001A/2A" → M8002A
    tok.prefix = prev.prefix
    tok.norm = tok.prefix + tok.core


def _can_range(prev: _Tok, tok: _Tok) -> bool:
    if not (prev.core.isdigit() and tok.core.isdigit()):
        return False
    if tok.prefix and tok.prefix != prev.prefix:
        return False
    return int(prev.core) < int(tok.core)


def model_tokens(text: str) -> frozenset[str]:
    """Normalised model numbers in free text, for fuzzy comparison of two items.

    "MMT-522 / MMT-722" → {"MMT522", "522", "MMT722", "722"}; "MX400-MX850" → {"MX400-850"};
    "Paradigm x12" → {"X12"}. Numbers of one or two digits without a prefix are left out.
    """
    found: set[str] = set()
    for tok in _tokenize(text):
        if tok.kind != _ID:
            continue
        if tok.lo is not None:
            found.add(f"{tok.prefix}{tok.lo}-{tok.hi}")
            continue
        for core in tok.cores():
            if tok.prefix:
                found.add(tok.prefix + core)
            digits = re.match(r"\d+", core)
            if (digits and len(digits.group(0)) >= 3) or (not tok.prefix and re.search(r"[A-Z]", core)):
                found.add(core)
    return frozenset(found)


# --- compiled devices and products -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WatchId:
    prefix: str
    core: str
    surface: str
    word_before: str  # the watched model's word right before the number ("CARTO" in "CARTO 3")

    @property
    def strength(self) -> int:
        """2: a prefixed number anyone would recognise; 1: a bare number of 3+ digits; 0: short."""
        if self.prefix and len(self.prefix + self.core) >= 4:
            return 2
        digits = re.match(r"\d+", self.core)
        return 1 if digits and len(digits.group(0)) >= 3 else 0


@dataclass(frozen=True, slots=True)
class _Phrase:
    text: str
    ids: tuple[_WatchId, ...]
    words: frozenset[str]
    kinds: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Device:
    device: WatchedDevice
    canonical: str | None
    accept: frozenset[str]  # vendor canonicals that count as this manufacturer
    ancestors: frozenset[str]  # vendors that count only when the advisory names the manufacturer
    key: str  # the watched manufacturer's name key (for manufacturers not in the table)
    mfr_forms: tuple[tuple[str, ...], ...]  # word runs that name the manufacturer in model text
    phrases: tuple[_Phrase, ...]

    @property
    def maker_words(self) -> frozenset[str]:
        return frozenset(w for form in self.mfr_forms for w in form)


@dataclass(frozen=True, slots=True)
class _ProductInfo:
    product: Product
    vendor: frozenset[str]  # canonicals the vendor field names
    vendor_key: str
    ids: tuple[_Tok, ...]
    words: frozenset[str]  # distinctive words
    version_models: bool  # the version field names models ("MMT-523 / MMT-723 Paradigm Revel")
    text_like: bool  # a long description (openFDA): matched like running text
    version_words: frozenset[str] = frozenset()
    numbered: bool = False  # the product name itself carries a model number ("Discovery XR656")
    kinds: frozenset[str] = frozenset()  # what sort of device it says it is ("MONITOR", "PROGRAMMER")
    excluded_ids: tuple[_Tok, ...] = ()  # models the product explicitly leaves out ("not including ...")
    excluded_words: frozenset[str] = frozenset()


def _form_words(forms: Iterable[str], as_written: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Word runs that name a manufacturer inside model text: every listed form, and the first word of
    the name as the user or the vendor field wrote it ("HAMILTON-T1" under "Hamilton Medical AG")."""
    runs: set[tuple[str, ...]] = set()
    for form in forms:
        words = tuple(w.upper() for w in _name_key(form).split())
        if words:
            runs.add(words)
    for name in as_written:
        words = tuple(w.upper() for w in _core_key(_name_key(name)).split())
        if words and len(words[0]) >= 4:
            runs.add(words[:1])
    return tuple(sorted(runs, key=len, reverse=True))


def _mark_mfr(tokens: Sequence[_Tok], forms: tuple[tuple[str, ...], ...]) -> None:
    words = [(i, t.norm) for i, t in enumerate(tokens) if t.kind == _WORD]
    for form in forms:
        n = len(form)
        for j in range(len(words) - n + 1):
            if tuple(w for _, w in words[j : j + n]) == form:
                for i, _ in words[j : j + n]:
                    tokens[i].mfr = True


# Generic words that still say what sort of device something is: two names that differ only there
# ("CareLink Monitor", "CareLink Programmer") are two products.
_KINDS = _word_set(
    """
    PUMP MONITOR PROGRAMMER SERVER READER TRANSMITTER RECEIVER VENTILATOR BED SCANNER ANALYZER VIEWER
    WORKSTATION CONTROLLER APP APPLICATION HUB METER SENSOR DEFIBRILLATOR PACEMAKER PORTAL TOOL UTILITY
    """
)


def _kinds(tokens: Sequence[_Tok]) -> frozenset[str]:
    found = set()
    for tok in tokens:
        if tok.kind == _WORD:
            singular = tok.norm[:-1] if tok.norm.endswith("S") else tok.norm
            if singular in _KINDS:
                found.add(singular)
            elif tok.norm in _KINDS:
                found.add(tok.norm)
    return frozenset(found)


def _distinctive(tokens: Sequence[_Tok]) -> frozenset[str]:
    words = {t.norm for t in tokens if t.kind == _WORD and not t.mfr and t.norm not in _GENERIC and len(t.norm) > 1}
    if not words and not any(t.kind == _ID for t in tokens):
        # a product named after its maker ("OpenClinic GA"): its maker's words are all there is
        words = {t.norm for t in tokens if t.kind == _WORD and t.norm not in _GENERIC and len(t.norm) > 1}
    return frozenset(words)


def _family_forms(aliases: ManufacturerAliases, canonicals: Iterable[str], raw: Iterable[str]) -> list[str]:
    forms = list(raw)
    for canonical in canonicals:
        forms.extend(aliases.forms(canonical))
    return forms


@lru_cache(maxsize=4096)
def _compile_device(device: WatchedDevice, aliases: ManufacturerAliases) -> _Device:
    canonical = aliases.canonical(device.manufacturer)
    accept = frozenset({canonical} | aliases.descendants(canonical)) if canonical else frozenset()
    ancestors = aliases.ancestors(canonical) if canonical else frozenset()
    key = _name_key(device.manufacturer)
    mfr_forms = _form_words(_family_forms(aliases, accept | ancestors, [device.manufacturer]), [device.manufacturer])
    phrases = []
    for model in device.models:
        tokens = _name_tokens(model)
        _mark_mfr(tokens, mfr_forms)
        ids = tuple(_watch_ids(tokens))
        phrases.append(_Phrase(model, ids, _distinctive(tokens), _kinds(tokens)))
    return _Device(device, canonical, accept, ancestors, key, mfr_forms, tuple(phrases))


def _copy(tok: _Tok) -> _Tok:
    return replace(tok)


def _name_tokens(name: str) -> list[_Tok]:
    """A product or model name's tokens (copies), with single capital letters after a name read as
    model designators: "Vivid I" is a model of the Vivid family, not the family itself."""
    tokens = [_copy(t) for t in _tokenize(name)]
    for prev, tok in itertools.pairwise(tokens):
        if (
            tok.kind == _WORD
            and len(tok.surface) == 1
            and tok.surface.isupper()
            and tok.sep == " "
            and prev.kind == _WORD
            and prev.norm not in _GENERIC
        ):
            tok.kind, tok.core = _ID, tok.norm
    return tokens


_EXCLUDING_RE = re.compile(r"[,;(]?\s*\b(?:not\s+including|excluding|except(?:\s+for)?|other\s+than)\b", re.I)


def _split_excluded(name: str) -> tuple[str, str]:
    """ "Venue, not including Venue 40 R1-3 and Venue 50 R4-5": what is named, and what is left out."""
    m = _EXCLUDING_RE.search(name)
    return (name[: m.start()], name[m.end() :]) if m else (name, "")


def _typed_code(before: _Tok | None, tok: _Tok) -> str:
    if before is None or before.kind != _WORD or before.mfr or tok.prefix or tok.prev_word:
        return ""
    if len(before.norm) > 3 or before.norm in _GENERIC or tok.sep not in (" ", "-"):
        return ""
    return before.norm


def _watch_ids(tokens: Sequence[_Tok]) -> Iterable[_WatchId]:
    word_before = ""  # may be the maker's own name: "HAMILTON" in "HAMILTON-T1"
    prev: _Tok | None = None
    for tok in tokens:
        before, prev = prev, tok
        if tok.kind == _WORD and tok.norm not in _GENERIC:
            word_before = tok.norm
        if tok.kind != _ID:
            continue
        code = _typed_code(before, tok)
        if code:  # typed in lower case, "mx 40" / "mmt-508": the short word may be the model's code
            yield _WatchId(code, tok.core, f"{before.surface if before else ''} {tok.surface}", word_before)
        if tok.lo is not None and tok.hi is not None and tok.hi - tok.lo <= 50:
            for n in range(tok.lo, tok.hi + 1):  # someone watching "MX400-MX450" watches each of them
                yield _WatchId(tok.prefix, str(n), f"{tok.prefix}{n}", word_before)
            continue
        for core in tok.cores():
            prefix = tok.prefix or tok.prev_word
            yield _WatchId(prefix, core, tok.surface, word_before)


_VERSION_MODELS_RE = re.compile(r"^\s*\d{3,}[A-Z]?(?:\s*(?:\||,|/|\band\b)\s*\d{3,}[A-Z]?)*\s*$", re.IGNORECASE)


def _version_names_models(version: str) -> bool:
    """A version field that holds model names or numbers instead of versions ("24950 | 24952")."""
    if not version.strip() or is_all_versions(version):
        return False
    return bool(_VERSION_MODELS_RE.match(version)) or not looks_like_version(version)


def _only_model_numbers(version: str) -> bool:
    """ "MMT-1740 | MMT-1741", "24950 | 24952", "2131 and 2141": model numbers and separators only."""
    tokens = _tokenize(version)
    return bool(tokens) and all(t.kind == _ID or t.norm in ("AND", "OR") for t in tokens)


_VERSION_WORDS_RE = re.compile(
    r"[<>=]|\d\.\d|\b(?:versions?|prior|before|after|earlier|later|lower|higher|older|newer|below|above|through)\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=1024)
def _vendor(vendor_field: str, aliases: ManufacturerAliases) -> tuple[frozenset[str], str, tuple[tuple[str, ...], ...]]:
    """A vendor field's listed manufacturers, its name key and the word runs naming it in product names."""
    vendor = aliases.find(vendor_field) if vendor_field else frozenset()
    related = vendor | _all_related(aliases, vendor)
    return vendor, _name_key(vendor_field), _form_words(_family_forms(aliases, related, [vendor_field]), [vendor_field])


def _compile_product(product: Product, aliases: ManufacturerAliases) -> _ProductInfo:
    vendor, vendor_key, forms = _vendor(product.vendor, aliases)
    included, excluded = _split_excluded(product.name)
    name_tokens = _name_tokens(included)
    left_out = _name_tokens(excluded)
    _mark_mfr(left_out, forms)
    version_models = _version_names_models(product.version)
    version_tokens: list[_Tok] = []
    if version_models:
        version_tokens = [_copy(t) for t in _tokenize(product.version)]
        for t in version_tokens:
            t.in_version = True
    else:
        version_tokens = [_copy(t) for t in _model_tail(product.version)]
    tokens = name_tokens + version_tokens
    _mark_mfr(tokens, forms)
    ids = tuple(t for t in tokens if t.kind == _ID)
    text_like = sum(1 for t in name_tokens if t.kind in (_WORD, _ID)) > 14
    version_words = frozenset(t.norm for t in version_tokens if t.kind == _WORD)
    numbered = any(t.kind == _ID for t in name_tokens)
    return _ProductInfo(
        product,
        vendor,
        vendor_key,
        ids,
        _distinctive(tokens),
        version_models,
        text_like,
        version_words,
        numbered,
        _kinds(name_tokens),
        tuple(t for t in left_out if t.kind == _ID),
        frozenset(t.norm for t in left_out if t.kind == _WORD and not t.mfr and t.norm not in _GENERIC),
    )


def _model_tail(version: str) -> list[_Tok]:
    """ "9.x model 35700BAX3": the model named after a version."""
    m = re.search(r"\bmodel\s+(.+)$", version, re.IGNORECASE)
    if not m:
        return []
    tokens = [_copy(t) for t in _tokenize(m.group(1))]
    for t in tokens:
        t.in_version = True
    return tokens


def _all_related(aliases: ManufacturerAliases, canonicals: Iterable[str]) -> set[str]:
    related: set[str] = set()
    for canonical in canonicals:
        related |= aliases.descendants(canonical) | aliases.ancestors(canonical)
    return related


# --- model matching --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hit:
    """How one watched model phrase matched one product or text."""

    kind: str  # "model": a model number; "name": every watched word; "family": the product family
    phrase: _Phrase
    token: str  # what matched, as the advisory wrote it
    in_version: bool = False
    positions: tuple[int, ...] = ()  # offsets in running text (for finding the version nearby)
    shared: int = 0  # watched words the product also has: the better of two model-number hits
    in_title: bool = False

    @property
    def rank(self) -> tuple[int, int]:
        return ({"model": 0, "name": 1, "family": 2}[self.kind], -self.shared)


_NO, _LENIENT, _EXACT = 0, 1, 2


def _id_matches(tok: _Tok, wid: _WatchId) -> int:
    """_EXACT, _LENIENT (one side lacks the other's code prefix: "MMT-508" / "MiniMed 508") or _NO."""
    if tok.series is not None:  # "Paradigm x12" covers 512 and MMT-512
        if wid.core == tok.core:
            return _EXACT if tok.prefix == wid.prefix else _NO
        if not tok.series.match(wid.core):
            return _NO
        return _EXACT if tok.prefix == wid.prefix else _LENIENT if not tok.prefix else _NO
    if tok.lo is not None and tok.hi is not None:
        in_range = wid.core.isdigit() and tok.lo <= int(wid.core) <= tok.hi
        return _EXACT if in_range and tok.prefix == wid.prefix else _NO
    if wid.core not in tok.cores():
        return _NO
    prefix = tok.prefix or tok.prev_word
    if prefix == wid.prefix:
        return _EXACT
    if prefix and wid.prefix:
        return _NO
    # "MMT-508" and "MiniMed 508" are one model; "T1" and "1" are not, nor "B650" and "Carestation 650"
    digits = re.match(r"\d+", wid.core)
    coded = len(prefix or wid.prefix) >= 3
    return _LENIENT if coded and digits is not None and len(digits.group(0)) >= 3 else _NO


def _match_product(phrase: _Phrase, info: _ProductInfo) -> _Hit | None:
    if any(_id_matches(tok, wid) for wid in phrase.ids for tok in info.excluded_ids):
        return None  # "not including Venue 50"
    if not phrase.ids and phrase.words and phrase.words <= info.excluded_words:
        return None  # "Voluson, not including ImageVault"
    shared = len(phrase.words & info.words)
    for wid in phrase.ids:
        for tok in info.ids:
            how = _id_matches(tok, wid)
            if how and _corroborated(wid, how, phrase, info.words):
                return _Hit("model", phrase, tok.surface, tok.in_version, shared=shared)
    if phrase.kinds and info.kinds and not phrase.kinds & info.kinds:
        return None  # "CareLink Monitor" is not the "CareLink Programmer"
    if not phrase.ids and phrase.words and phrase.words <= info.words:
        return _Hit("name", phrase, phrase.text, _words_in_version(phrase, info), shared=shared)
    # The product names a family the watched model belongs to. A model number in the product's name
    # ("Discovery XR656") makes it a different model; one in its version field ("8.x model 35700BAX2")
    # conflicts only with a watched model number.
    if info.words and info.words <= phrase.words and not info.numbered and not (info.ids and phrase.ids):
        return _Hit("family", phrase, info.product.name, shared=shared)
    return None


def _words_in_version(phrase: _Phrase, info: _ProductInfo) -> bool:
    return info.version_models and all(w in info.version_words for w in phrase.words)


def _corroborated(wid: _WatchId, how: int, phrase: _Phrase, words: frozenset[str]) -> bool:
    """A bare number alone is weak: the product must share a word with the watched model, or have none.
    So is a number whose code prefix only one side gives ("CARESCAPE B650" / "Carestation 650")."""
    if (wid.strength == 2 and how == _EXACT) or not phrase.words or not words:
        return True
    return bool(phrase.words & words)


# --- matching running text (RSS items, recalls, long descriptions) -----------------------------


@dataclass(frozen=True, slots=True)
class _Text:
    text: str
    tokens: tuple[_Tok, ...]
    words: frozenset[str]


def _compile_text(text: str, forms: tuple[tuple[str, ...], ...]) -> _Text:
    tokens = [_copy(t) for t in _tokenize(text)]
    _mark_mfr(tokens, forms)
    words = frozenset(t.norm for t in tokens if t.kind == _WORD)
    return _Text(_folded(text), tuple(tokens), words)  # token offsets hold in the folded text


def _match_text(phrase: _Phrase, text: _Text, *, family: bool = True) -> _Hit | None:
    tokens = text.tokens
    found: list[_Tok] = []
    for i, tok in enumerate(tokens):
        if tok.kind == _ID and any(
            (how := _id_matches(tok, wid)) and _text_corroborated(wid, how, phrase, tokens, i, text.words)
            for wid in phrase.ids
        ):
            found.append(tok)
    if found:
        return _Hit("model", phrase, found[0].surface, positions=tuple(t.end for t in found))
    if not phrase.words:
        return None
    if not phrase.ids:
        if not phrase.words <= text.words:
            return None
        ends = _mentions(tokens, phrase.words, phrase.kinds)
        return _Hit("name", phrase, phrase.text, positions=ends) if ends else None
    return _family_in_text(phrase, tokens) if family else None


def _mentions(tokens: Sequence[_Tok], words: frozenset[str], kinds: frozenset[str]) -> tuple[int, ...]:
    """Where every watched word appears close together ("Connex Spot Monitor", not "Connex ... spot
    check" two sentences apart); the offset after the last word, where a version would follow."""
    ends: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.kind != _WORD or tok.norm not in words:
            continue
        seen = {tok.norm}
        end = tok.end
        foreign = 0  # generic words in between are free: "USB-C Blood Glucose Monitoring System Starter Kit"
        for j in range(i + 1, min(len(tokens), i + 16)):
            nxt = tokens[j]
            if seen == words or foreign > 2 or _STRONG_BOUNDARY.search(nxt.sep):
                break
            if nxt.kind == _WORD and nxt.norm in words:
                seen.add(nxt.norm)
                end = nxt.end
            elif nxt.kind == _ID or (nxt.norm not in _GENERIC and len(nxt.norm) > 1):
                foreign += 1
        if seen == words and _kinds_agree(kinds, tokens[i : i + 16]):
            ends.append(end)
    return tuple(dict.fromkeys(ends))


def _kinds_agree(kinds: frozenset[str], window: Sequence[_Tok]) -> bool:
    """The words right after a mention do not say it is another sort of device."""
    if not kinds:
        return True
    near: list[_Tok] = []
    for tok in window:
        if near and _STRONG_BOUNDARY.search(tok.sep):
            break
        near.append(tok)
    found = _kinds(near[:8])
    return not found or bool(found & kinds)


def _text_corroborated(
    wid: _WatchId, how: int, phrase: _Phrase, tokens: Sequence[_Tok], i: int, words: frozenset[str]
) -> bool:
    strength = wid.strength if how == _EXACT else min(wid.strength, 1)
    if strength == 2:
        return True
    if strength == 1:
        return not phrase.words or bool(phrase.words & words)
    # a short number ("CARTO 3", "T1") counts only right after the watched model's own word
    for back in range(i - 1, max(-1, i - 4), -1):
        if _STRONG_BOUNDARY.search(tokens[back + 1].sep):
            break
        tok = tokens[back]
        if tok.kind == _WORD and (tok.norm in phrase.words or tok.norm == wid.word_before):
            return True
    return not phrase.words and not wid.word_before and bool(wid.prefix)


def _family_in_text(phrase: _Phrase, tokens: Sequence[_Tok]) -> _Hit | None:
    """A family name in text ("the MiniMed Paradigm family") concerns the watched model unless a
    model number right next to it names another model ("Alaris PC Unit 8015")."""
    family_at = -1
    for i, tok in enumerate(tokens):
        if tok.kind != _WORD or tok.mfr or tok.norm not in phrase.words:
            continue
        verdict = _occurrence(phrase, tokens, i)
        if verdict == "conflict":
            return None
        if verdict == "family" and family_at < 0:
            family_at = i
    if family_at < 0:
        return None
    return _Hit("family", phrase, tokens[family_at].surface, positions=(tokens[family_at].end,))


def _occurrence(phrase: _Phrase, tokens: Sequence[_Tok], i: int) -> str:
    if i > 0 and tokens[i - 1].kind == _ID and not _STRONG_BOUNDARY.search(tokens[i].sep):
        return "conflict"  # "9790 CareLink": another model number right before the name
    verdict = "family"
    for j in range(i + 1, min(len(tokens), i + 7)):
        tok = tokens[j]
        if _STRONG_BOUNDARY.search(tok.sep):
            break
        if tok.kind == _ID:
            return "conflict"  # "Alaris PC Unit Model 8015": a model of the family, not ours
        if tok.kind != _WORD or tok.mfr or tok.norm in phrase.words:
            continue
        if tok.norm in _PHRASE_STOP:
            break
        if tok.norm not in _GENERIC and len(tok.norm) > 1:
            verdict = "other"  # "Alaris Gateway Workstation": a different product of the family
    return verdict


# --- manufacturer matching -------------------------------------------------------------------


def _vendor_matches(dev: _Device, vendor: frozenset[str], vendor_key: str, adv: _CompiledAdvisory) -> bool:
    """Does a vendor field name the watched manufacturer (or a company it bought)?"""
    if vendor & dev.accept:
        return True
    core = _core_key(dev.key)
    vendor_core = _core_key(vendor_key)
    if core and _contains_words(vendor_core, core):
        return True
    parent_like = bool(vendor & dev.ancestors) or bool(vendor_core and _contains_words(dev.key, vendor_core))
    # The vendor is the parent ("Baxter" for a Welch Allyn device): only when the advisory also names
    # the acquired company, or is a medical advisory, where the parent's name stands for its devices.
    return parent_like and (adv.medical or _text_names_manufacturer(dev, adv.named, adv.context_key))


def _text_names_manufacturer(dev: _Device, found: frozenset[str], text_key: str) -> bool:
    if found & dev.accept:
        return True
    core = _core_key(dev.key)
    return bool(core) and _contains_words(text_key, core)


# --- versions --------------------------------------------------------------------------------

_VTOK = r"v?\d+(?:[.\-_]\w+)*"
_TEXT_VERSION_RE = re.compile(
    r"vers:[^\s,;]+"
    r"|\ball\s+(?:software\s+|firmware\s+)?versions\b"
    rf"|(?:(?:software|firmware)\s+)?versions?\s+(?:prior\s+to|before|up\s+to)\s+(?:version\s+)?{_VTOK}"
    rf"|(?:(?:software|firmware)\s+)?versions?\s+{_VTOK}(?:\s*\([^)]*\))?"
    r"(?:\s+(?:and|or)\s+(?:prior|earlier|lower|below|older|before|later|higher|newer|above))?"
    rf"|\b(?:prior\s+to|before)\s+(?:version\s+)?{_VTOK}"
    rf"|(?:<=|>=|<|>|=)\s*{_VTOK}"
    rf"|\b{_VTOK}\s+(?:and|or)\s+(?:prior|earlier|lower|below|older)\b",
    re.IGNORECASE,
)
_SEGMENT_END_RE = re.compile(r"[;|\n]|\.\s")
_VERSION_CONTINUES_RE = re.compile(r"\|\s*(?:all\s+)?(?:software\s+|firmware\s+)?(?:versions?|vers?)\b", re.IGNORECASE)


def _version_after(text: str, position: int) -> str:
    """The version phrase right after a mention, within its list item ("Product | Version 1.1" too)."""
    end = len(text)
    for m in _SEGMENT_END_RE.finditer(text, position):
        if not _VERSION_CONTINUES_RE.match(text, m.start()):
            end = m.start()
            break
    found = _TEXT_VERSION_RE.search(text, position, end)
    if not found:
        return ""
    phrase = found.group(0).strip().rstrip(".,;)")
    return "all versions" if re.fullmatch(r"all\s+.*versions", phrase, re.IGNORECASE) else phrase


_SECTION_RE = re.compile(r"AFFECTED PRODUCTS(.*?)(?:\n\s*\d+(?:\.\d+)*\s+[A-Z]|\Z)", re.DOTALL)
_NOT_AFFECTED = frozenset({"fixed", "first_fixed", "known_not_affected", "recommended"})


@dataclass(frozen=True, slots=True)
class _Verdict:
    affected: bool | None
    words: str  # the verdict in plain words, with the advisory's own expression
    from_models: bool = False  # "all versions" only because the version field lists models


_NO_RANGE = _Verdict(None, "the advisory gives no version range (undecided)")


def _verdict(firmware: str | None, expression: str, *, models_only: bool = False) -> _Verdict:
    fw = (firmware or "").strip() or None
    if models_only:
        return _Verdict(True, f'all versions of the models listed ("{expression.strip()}") are affected', True)
    if is_all_versions(expression):
        shown = f' ("{expression.strip()}")' if expression.strip() else ""
        return _Verdict(True, f"all versions are affected{shown}")
    got = evaluate(fw, expression)
    quoted = f'"{expression.strip()}"'
    if got is True:
        return _Verdict(True, f"firmware {fw} is within {quoted} (affected)")
    if got is False:
        return _Verdict(False, f"firmware {fw} is outside {quoted} (not affected)")
    if fw is None:
        return _Verdict(None, f"affected versions {quoted}; no firmware configured (undecided)")
    return _Verdict(None, f"cannot tell whether firmware {fw} falls in {quoted} (undecided)")


def _fixed_verdict(firmware: str | None, expression: str, status: str) -> _Verdict:
    fw = (firmware or "").strip() or None
    label = status.replace("_", " ")
    if fw and evaluate(fw, expression):
        return _Verdict(False, f'the advisory lists "{expression.strip()}" as {label}; firmware {fw} is (not affected)')
    return _Verdict(None, f'the advisory lists "{expression.strip()}" as {label} (check your version; undecided)')


def _text_verdict(firmware: str | None, text: str, positions: Sequence[int]) -> _Verdict:
    """The version an item's text gives for the matched model: the nearest phrase after each mention
    of it, else the one version phrase of a CISA-style "AFFECTED PRODUCTS" section."""
    phrases = [p for p in (_version_after(text, pos) for pos in positions) if p]
    if phrases:
        return _verdict(firmware, " | ".join(dict.fromkeys(phrases)))
    section = _SECTION_RE.search(text)
    if section:
        listed = {m.group(0).strip() for m in _TEXT_VERSION_RE.finditer(section.group(1))}
        if len(listed) == 1:
            return _verdict(firmware, listed.pop())
    return _NO_RANGE


# --- putting it together ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    hit: _Hit
    product: Product | None
    verdict: _Verdict
    affected_status: bool  # False for products listed as fixed / not affected


@dataclass(slots=True)
class _CompiledAdvisory:
    advisory: Advisory
    products: tuple[_ProductInfo, ...]
    informative: bool
    medical: bool
    named: frozenset[str]  # listed manufacturers the title/summary/products name
    context_key: str  # title, summary and product names as a name key
    _texts: dict[tuple[tuple[str, ...], ...], _Text] = field(default_factory=dict)

    def text(self, forms: tuple[tuple[str, ...], ...]) -> _Text:
        got = self._texts.get(forms)
        if got is None:
            got = self._texts[forms] = _compile_text(_advisory_text(self.advisory), forms)
        return got


def _advisory_text(advisory: Advisory) -> str:
    return f"{advisory.title}\n{advisory.summary}"


def _compile_advisory(advisory: Advisory, aliases: ManufacturerAliases) -> _CompiledAdvisory:
    products = tuple(_compile_product(p, aliases) for p in advisory.products)
    informative = any(p.ids or p.words for p in products)
    medical = (advisory.advisory_id or "").upper().startswith("ICSMA") or advisory.kind == SourceKind.OPENFDA
    context = " ".join([advisory.title, advisory.summary, *(p.name for p in advisory.products)])
    return _CompiledAdvisory(advisory, products, informative, medical, aliases.find(context), _name_key(context))


def match_advisory(advisory: Advisory, devices: Sequence[WatchedDevice], aliases: ManufacturerAliases) -> list[Match]:
    """Every watched device this advisory concerns, with `affected` and a one-sentence reason."""
    compiled = _compile_advisory(advisory, aliases)
    matches: list[Match] = []
    for device in devices:
        match = _match_device(compiled, _compile_device(device, aliases), aliases)
        if match is not None:
            matches.append(match)
    return matches


def match_all(
    advisories: Iterable[Advisory], devices: Sequence[WatchedDevice], aliases: ManufacturerAliases
) -> list[Match]:
    """`match_advisory` over many advisories, in advisory order."""
    matches: list[Match] = []
    for advisory in advisories:
        matches.extend(match_advisory(advisory, devices, aliases))
    return matches


def _match_device(adv: _CompiledAdvisory, dev: _Device, aliases: ManufacturerAliases) -> Match | None:
    found: list[_Found] = []
    mfr_note = ""
    if adv.informative:
        vendors = [info for info in adv.products if _vendor_matches(dev, info.vendor, info.vendor_key, adv)]
        for info in vendors:
            hit = _best_product_hit(dev, info, adv)
            if hit is not None:
                found.append(hit)
                mfr_note = mfr_note or f'vendor "{info.product.vendor}"'
        if not found and vendors:
            title_hit = _title_hit(adv, dev)
            if title_hit is not None:
                found.append(title_hit)
                mfr_note = f'vendor "{vendors[0].product.vendor}"'
    else:
        vendor_text = adv.advisory.manufacturer or ""
        text_hit = _text_match(adv, dev, vendor_text, aliases)
        if text_hit is not None:
            found.append(text_hit[0])
            mfr_note = text_hit[1]
    if not found:
        return None
    return _build_match(adv.advisory, dev, found, mfr_note)


def _title_hit(adv: _CompiledAdvisory, dev: _Device) -> _Found | None:
    """The title names the watched model though no listed product does ("B. Braun Infusomat Space ...")."""
    title = _compile_text(adv.advisory.title, dev.mfr_forms)
    for phrase in dev.phrases:
        hit = _match_text(phrase, title, family=False)
        # one family word in a title ("Medtronic MyCareLink Smart") is too little to go on
        if hit is not None and (hit.kind == "model" or len(phrase.words - dev.maker_words) >= 2):
            titled = _Hit(hit.kind, phrase, hit.token, in_title=True)
            words = "its product list does not name the model, so the affected versions are unknown (undecided)"
            return _Found(titled, None, _Verdict(None, words), True)
    return None


def _best_product_hit(dev: _Device, info: _ProductInfo, adv: _CompiledAdvisory) -> _Found | None:
    if info.text_like:
        text = _compile_text(f"{info.product.name}\n{adv.advisory.title}", dev.mfr_forms)
        for phrase in dev.phrases:
            hit = _match_text(phrase, text)
            if hit is not None:
                verdict = _verdict_for(dev, info.product, hit, info.version_models)
                if not info.product.version.strip():
                    verdict = _text_verdict(dev.device.firmware, text.text, hit.positions)
                return _Found(hit, info.product, verdict, info.product.status not in _NOT_AFFECTED)
        return None
    best: _Hit | None = None
    for phrase in dev.phrases:
        hit = _match_product(phrase, info)
        if hit is not None and (best is None or hit.rank < best.rank):
            best = hit
    if best is None:
        return None
    verdict = _verdict_for(dev, info.product, best, info.version_models)
    return _Found(best, info.product, verdict, info.product.status not in _NOT_AFFECTED)


def _verdict_for(dev: _Device, product: Product, hit: _Hit, version_models: bool) -> _Verdict:
    firmware = dev.device.firmware
    if product.status in _NOT_AFFECTED:
        return _fixed_verdict(firmware, product.version, product.status)
    if product.status == "under_investigation":
        shown = product.version.strip() or product.name
        return _Verdict(None, f'the vendor is still investigating "{shown}" (undecided)')
    if not product.version.strip():  # a recall's product description: no version stated at all
        return _NO_RANGE
    # a version field that lists models ("MMT-523 / MMT-723 Paradigm Revel", "24950 | 24952") puts
    # no limit on the version of the model it names
    models_only = version_models and (
        (hit.in_version and not _VERSION_WORDS_RE.search(product.version)) or _only_model_numbers(product.version)
    )
    return _verdict(firmware, product.version, models_only=models_only)


def _text_match(
    adv: _CompiledAdvisory, dev: _Device, vendor_text: str, aliases: ManufacturerAliases
) -> tuple[_Found, str] | None:
    if vendor_text:
        vendor = aliases.find(vendor_text)
        if not _vendor_matches(dev, vendor, _name_key(vendor_text), adv):
            return None
        note = f'vendor "{vendor_text.strip()}"'
    else:
        if not _text_names_manufacturer(dev, adv.named, adv.context_key):
            return None
        note = f'named as "{_surface_name(adv, dev)}" in the text'
    text = adv.text(dev.mfr_forms)
    for phrase in dev.phrases:
        hit = _match_text(phrase, text)
        if hit is not None:
            verdict = _text_verdict(dev.device.firmware, text.text, hit.positions)
            return _Found(hit, None, verdict, True), note
    return None


def _surface_name(adv: _CompiledAdvisory, dev: _Device) -> str:
    """The manufacturer's name as the text writes it ("BD", not our canonical name)."""
    text = _folded(f"{adv.advisory.title}\n{adv.advisory.summary}")
    own = _form_words([dev.device.manufacturer, *([dev.canonical] if dev.canonical else [])], [])
    for words in (*own, *dev.mfr_forms):
        pattern = r"(?<![A-Za-z0-9])" + r"[^A-Za-z0-9]+".join(map(re.escape, words)) + r"(?![A-Za-z0-9])"
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            return m.group(0)
    return dev.device.manufacturer


def _build_match(advisory: Advisory, dev: _Device, found: list[_Found], mfr_note: str) -> Match:
    # Affected when any matched product says so; not affected only when every one says not. Products
    # listed as fixed never make a device affected.
    affected_ones = [f for f in found if f.affected_status]
    pool = affected_ones or found
    values = [f.verdict.affected for f in pool]
    affected: bool | None = None
    if affected_ones and True in values:
        affected = True
    elif all(v is False for v in values):
        affected = False
    agreeing = [f for f in pool if f.verdict.affected == affected] or pool
    # the most specific match explains best: a model number over a family name, a real version range
    # over a list of models
    lead = min(agreeing, key=lambda f: (f.hit.rank, f.verdict.from_models))
    why = _why(dev, lead, mfr_note, len(found))
    products = tuple(f.product for f in found if f.product is not None)
    return Match(advisory=advisory, device=dev.device, affected=affected, why=why, matched_products=products)


def _why(dev: _Device, lead: _Found, mfr_note: str, count: int) -> str:
    hit = lead.hit
    # the vendor of the product that explains the match, not of whichever product matched first
    note = f'vendor "{lead.product.vendor.strip()}"' if lead.product is not None and lead.product.vendor else mfr_note
    who = f"{dev.device.manufacturer} ({note})"
    what = _text_what(hit) if lead.product is None else _product_what(lead.product, hit)
    more = f" (and {count - 1} more matching product{'s' if count > 2 else ''})" if count > 1 else ""
    return f"{who} {what}{more}; {lead.verdict.words}"


def _product_what(product: Product, hit: _Hit) -> str:
    name = f'product "{product.name}"'
    if hit.in_version:
        name += f' ("{product.version.strip()}")'
    if hit.kind == "model":
        return f"{name} names model {hit.token}"
    if hit.kind == "name":
        return f'{name} names "{hit.phrase.text}"'
    return f'{name} is the product family of watched model "{hit.phrase.text}"'


def _text_what(hit: _Hit) -> str:
    where = "title" if hit.in_title else "text"
    if hit.kind == "model":
        return f"{where} names model {hit.token}"
    if hit.kind == "name":
        return f'{where} names "{hit.phrase.text}"'
    return f'text names the product family "{hit.token}" of watched model "{hit.phrase.text}"'
