"""CSAF 2.0 advisories (CISA's cisagov/CSAF repository and other providers) → Advisory. Pure."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregator.errors import ParseError
from aggregator.identifiers import all_identifiers, html_to_text, parse_datetime
from aggregator.models import Advisory, Product, SourceKind

SUMMARY_CAP = 2000
_MAX_BRANCH_DEPTH = 40  # real trees are 2-5 levels deep; guards against hostile nesting

# Status preference when one product carries several statuses across vulnerabilities:
# anything saying "affected" wins, then "fixed", then the rest (first seen wins within a rank).
_STATUS_RANK = {
    "known_affected": 0,
    "first_affected": 0,
    "last_affected": 0,
    "fixed": 1,
    "first_fixed": 1,
}
_OTHER_STATUS_RANK = 2
_VERSION_CATEGORIES = frozenset({"product_version", "product_version_range"})
_SUB_VERSION_CATEGORIES = frozenset({"service_pack", "patch_level"})
_NAME_CATEGORIES = frozenset({"product_family", "product_name"})
_TITLE_UPDATE_RE = re.compile(r"\(\s*Update\s+([A-Z])\s*\)", re.IGNORECASE)
_BARE_LETTER_RE = re.compile(r"^[A-Z]$", re.IGNORECASE)
_UPDATE_LETTER_RE = re.compile(r"^Update\s+([A-Z])$", re.IGNORECASE)
_HTML_TAG_RE = re.compile(r"<\s*/?[a-zA-Z][^>]*>")
_WS_RE = re.compile(r"[ \t]+")
_BLANKS_RE = re.compile(r"\n\s*\n+")


def is_csaf(doc: object) -> bool:
    """True when `doc` (parsed JSON) is a CSAF 2.0 document with a tracking id."""
    if not isinstance(doc, dict):
        return False
    document = doc.get("document")
    if not isinstance(document, dict) or not document.get("csaf_version"):
        return False
    tracking = document.get("tracking")
    return isinstance(tracking, dict) and isinstance(tracking.get("id"), str) and bool(tracking["id"].strip())


def parse_csaf(body: bytes, *, source: str) -> Advisory:
    """One CSAF 2.0 JSON document → one Advisory; ParseError when it is not valid CSAF."""
    doc = _load_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("document"), dict):
        raise ParseError("not a CSAF document: no 'document' object")
    document = _dict(doc.get("document"))
    if not document.get("csaf_version"):
        raise ParseError("not a CSAF document: no document.csaf_version")
    tracking = _dict(document.get("tracking"))
    tracking_id = _str(tracking.get("id")).upper()
    if not tracking_id:
        raise ParseError("CSAF document has no document.tracking.id")

    title = _str(document.get("title")) or tracking_id
    vulnerabilities = [v for v in _list(doc.get("vulnerabilities")) if isinstance(v, dict)]
    references = [r for r in _list(document.get("references")) if isinstance(r, dict)]
    ref_urls = [_str(r.get("url")) for r in references if _str(r.get("url"))]
    cves = _unique(_str(v.get("cve")).upper() for v in vulnerabilities)
    cwes = _unique(_str(_dict(v.get("cwe")).get("id")).upper() for v in vulnerabilities)
    aliases = [_str(a) for a in _list(tracking.get("aliases"))]
    products = _products(_dict(doc.get("product_tree")), _statuses(vulnerabilities))
    cvss_score, severity = _best_score(vulnerabilities)
    if severity is None:  # Red Hat and others rate the whole document instead ("Important")
        severity = _str(_dict(document.get("aggregate_severity")).get("text")).upper() or None

    return Advisory(
        source=source,
        kind=SourceKind.CSAF,
        entry_id=tracking_id,
        advisory_id=tracking_id,
        title=title,
        url=_web_url(references),
        published=parse_datetime(_str(tracking.get("initial_release_date"))),
        updated=parse_datetime(_str(tracking.get("current_release_date"))),
        summary=_summary(document, vulnerabilities),
        identifiers=all_identifiers(tracking_id, *aliases, *cves, title, *ref_urls),
        cves=tuple(cves),
        cwes=tuple(cwes),
        products=products,
        revision=_revision(tracking, title),
        cvss_score=cvss_score,
        severity=severity,
        remediations=_remediations(vulnerabilities),
        release_dates=_release_dates(tracking),
        manufacturer=next((p.vendor for p in products if p.vendor), None),
        extra=_extra(document, tracking),
    )


# --- products -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """A product definition found in the tree, before statuses are attached."""

    vendor: str
    name: str
    version: str
    model_numbers: tuple[str, ...]


def _products(tree: dict[str, Any], statuses: dict[str, str]) -> tuple[Product, ...]:
    """Every product the tree defines: branch leaves, full_product_names and relationships."""
    entries: dict[str, _Entry] = {}
    anonymous: list[_Entry] = []  # products without a product_id: kept, but no status can name them

    def add(product_id: str, entry: _Entry) -> None:
        if not product_id:
            anonymous.append(entry)
        elif product_id not in entries:  # first definition wins; ids are unique in valid CSAF
            entries[product_id] = entry

    for product_id, entry in _branch_leaves(_list(tree.get("branches"))):
        add(product_id, entry)
    for fpn in _list(tree.get("full_product_names")):
        fpn = _dict(fpn)
        add(_str(fpn.get("product_id")), _Entry("", _str(fpn.get("name")), "", _model_numbers(fpn)))
    for rel in _list(tree.get("relationships")):
        product_id, entry = _relationship(_dict(rel), entries)
        add(product_id, entry)

    products = [
        Product(e.vendor, e.name, e.version, statuses.get(pid, ""), e.model_numbers)
        for pid, e in entries.items()
    ]
    products.extend(Product(e.vendor, e.name, e.version, "", e.model_numbers) for e in anonymous)
    return tuple(products)


def _branch_leaves(branches: list[Any]) -> Iterator[tuple[str, _Entry]]:
    """(product_id, entry) for every branch carrying a `product`, in document order."""

    def walk(
        nodes: list[Any], vendor: str, names: tuple[str, ...], versions: tuple[str, ...], depth: int
    ) -> Iterator[tuple[str, _Entry]]:
        if depth > _MAX_BRANCH_DEPTH:
            return
        for node in nodes:
            if not isinstance(node, dict):
                continue
            category = _str(node.get("category"))
            name = _str(node.get("name"))
            n_vendor, n_names, n_versions = vendor, names, versions
            if category == "vendor":
                n_vendor = name
            elif category in _NAME_CATEGORIES and name:
                n_names = (*names, name)
            elif category in _VERSION_CATEGORIES and name:
                n_versions = (name,)  # a nested version replaces the outer one
            elif category in _SUB_VERSION_CATEGORIES and name:
                n_versions = (*versions, name)
            product = node.get("product")
            if isinstance(product, dict):
                full_name = _str(product.get("name"))
                display = _join_names(n_names) or full_name or name
                entry = _Entry(n_vendor, display, " ".join(n_versions), _model_numbers(product))
                yield _str(product.get("product_id")), entry
            yield from walk(_list(node.get("branches")), n_vendor, n_names, n_versions, depth + 1)

    yield from walk(branches, "", (), (), 0)


def _join_names(names: tuple[str, ...]) -> str:
    """Family and product names as one phrase, without repeating a part the next one already holds."""
    joined = ""
    for name in names:
        # "Red Hat Enterprise Linux" + "Red Hat Enterprise Linux Server 7.6": the inner name stands alone
        if not joined or joined.casefold() in name.casefold() or _first_word(joined) == _first_word(name):
            joined = name
        elif name.casefold() not in joined.casefold():
            joined = f"{joined} {name}"
    return joined


def _first_word(text: str) -> str:
    return text.split(maxsplit=1)[0].casefold() if text.strip() else ""


def _relationship(rel: dict[str, Any], known: dict[str, _Entry]) -> tuple[str, _Entry]:
    """A product defined as "<component> as a component of <platform>" (Red Hat style)."""
    fpn = _dict(rel.get("full_product_name"))
    component = known.get(_str(rel.get("product_reference")))
    platform = known.get(_str(rel.get("relates_to_product_reference")))
    name = _str(fpn.get("name"))
    if not name and component and platform:
        name = f"{component.name} as a component of {platform.name}"
    vendor = (component.vendor if component else "") or (platform.vendor if platform else "")
    version = component.version if component else ""
    models = _model_numbers(fpn) or (component.model_numbers if component else ())
    return _str(fpn.get("product_id")), _Entry(vendor, name, version, models)


def _model_numbers(product: dict[str, Any]) -> tuple[str, ...]:
    helper = _dict(product.get("product_identification_helper"))
    return tuple(_unique(_str(m) for m in _list(helper.get("model_numbers"))))


def _statuses(vulnerabilities: list[dict[str, Any]]) -> dict[str, str]:
    """product_id → the most telling status any vulnerability gives it."""
    best: dict[str, str] = {}
    for vuln in vulnerabilities:
        for status, ids in _dict(vuln.get("product_status")).items():
            rank = _STATUS_RANK.get(status, _OTHER_STATUS_RANK)
            for product_id in _list(ids):
                pid = _str(product_id)
                current = best.get(pid)
                if current is None or rank < _STATUS_RANK.get(current, _OTHER_STATUS_RANK):
                    best[pid] = status
    return best


# --- document-level facts -------------------------------------------------------------------


def _web_url(references: list[dict[str, Any]]) -> str | None:
    """The `self` reference that is a web page rather than the JSON file itself."""
    for ref in references:
        url = _str(ref.get("url"))
        if _str(ref.get("category")) == "self" and url and not url.lower().endswith(".json"):
            return url
    return None


def _revision(tracking: dict[str, Any], title: str) -> str | None:
    """The newest revision_history entry ("Initial", "Update A"), or a later "(Update X)" in the title."""
    history = [r for r in _list(tracking.get("revision_history")) if isinstance(r, dict)]
    revision: str | None = None
    if history:
        newest = max(enumerate(history), key=lambda ir: (_revision_time(ir[1]), ir[0]))[1]
        revision = _str(newest.get("legacy_version")) or _str(newest.get("number")) or None
        if revision and _BARE_LETTER_RE.match(revision):
            revision = f"Update {revision.upper()}"  # older CISA files say just "A"
    elif _str(tracking.get("version")):
        revision = _str(tracking.get("version"))
    # CISA sometimes retitles for an update without adding its revision_history entry
    title_match = _TITLE_UPDATE_RE.search(title)
    if title_match:
        title_letter = title_match.group(1).upper()
        current = _UPDATE_LETTER_RE.match(revision or "")
        if current is None or current.group(1).upper() < title_letter:
            revision = f"Update {title_letter}"
    return revision


def _revision_time(entry: dict[str, Any]) -> float:
    parsed = parse_datetime(_str(entry.get("date")))
    return parsed.timestamp() if parsed else float("-inf")


def _release_dates(tracking: dict[str, Any]) -> tuple[datetime, ...]:
    raw = [tracking.get("initial_release_date"), tracking.get("current_release_date")]
    raw.extend(_dict(r).get("date") for r in _list(tracking.get("revision_history")))
    dates = {d for d in (parse_datetime(_str(v)) for v in raw) if d is not None}
    return tuple(sorted(dates))


def _summary(document: dict[str, Any], vulnerabilities: list[dict[str, Any]]) -> str:
    """The document's summary notes, then each vulnerability's summary/description, capped."""
    texts = [_str(n.get("text")) for n in _notes(document) if n.get("category") == "summary"]
    for vuln in vulnerabilities:
        texts.extend(
            _str(n.get("text")) for n in _notes(vuln) if n.get("category") in ("summary", "description")
        )
    parts = _unique(_plain(t) for t in texts)
    return _cap("\n\n".join(parts), SUMMARY_CAP)


def _remediations(vulnerabilities: list[dict[str, Any]]) -> tuple[str, ...]:
    found: list[str] = []
    for vuln in vulnerabilities:
        for rem in _list(vuln.get("remediations")):
            rem = _dict(rem)
            details = _plain(_str(rem.get("details")))
            if details:
                category = _str(rem.get("category")) or "remediation"
                found.append(f"{category}: {details}")
    return tuple(_unique(found))


def _best_score(vulnerabilities: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    """Highest CVSS v3 base score and its severity; CVSS v2 only when no v3 score exists."""
    for key, severity_of in (("cvss_v3", _v3_severity), ("cvss_v2", _v2_severity)):
        best: tuple[float, str] | None = None
        for vuln in vulnerabilities:
            for score in _list(vuln.get("scores")):
                cvss = _dict(_dict(score).get(key))
                value = cvss.get("baseScore")
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                severity = _str(cvss.get("baseSeverity")).upper() or severity_of(float(value))
                if best is None or float(value) > best[0]:
                    best = (float(value), severity)
        if best is not None:
            return best
    return None, None


def _v3_severity(score: float) -> str:
    if score == 0:
        return "NONE"
    if score < 4:
        return "LOW"
    if score < 7:
        return "MEDIUM"
    return "HIGH" if score < 9 else "CRITICAL"


def _v2_severity(score: float) -> str:
    if score < 4:
        return "LOW"
    return "MEDIUM" if score < 7 else "HIGH"


def _extra(document: dict[str, Any], tracking: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    extra: list[tuple[str, str]] = []
    if _str(tracking.get("version")):
        extra.append(("tracking_version", _str(tracking.get("version"))))
    for note in _notes(document):
        # CISA's sector note is how a reader tells a healthcare advisory from an industrial one
        if _str(note.get("title")).lower() == "critical infrastructure sectors" and _str(note.get("text")):
            extra.append(("sectors", _str(note.get("text"))))
            break
    return tuple(extra)


# --- helpers --------------------------------------------------------------------------------


def _load_json(body: bytes) -> object:
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]  # json.loads rejects a UTF-8 BOM on bytes
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ParseError(f"invalid JSON: {exc}") from exc


def _notes(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in _list(obj.get("notes")) if isinstance(n, dict)]


def _plain(text: str) -> str:
    """Plain text; HTML is only unwrapped when real tags are present ("< 8.2" is not a tag)."""
    if _HTML_TAG_RE.search(text):
        return html_to_text(text)
    lines = (_WS_RE.sub(" ", line).strip() for line in text.splitlines())
    return _BLANKS_RE.sub("\n\n", "\n".join(lines)).strip()


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip() + "…"


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _unique(items: Iterator[str] | list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)
