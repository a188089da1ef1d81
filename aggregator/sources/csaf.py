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
from aggregator.identifiers import all_identifiers, html_to_text, parse_datetime, unique
from aggregator.models import Advisory, Product, SourceKind
from aggregator.sources.jsonvalues import as_dict, as_list, as_str, cap, fold_spaces

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
    document = as_dict(doc.get("document"))
    if not document.get("csaf_version"):
        raise ParseError("not a CSAF document: no document.csaf_version")
    tracking = as_dict(document.get("tracking"))
    tracking_id = as_str(tracking.get("id")).upper()
    if not tracking_id:
        raise ParseError("CSAF document has no document.tracking.id")

    title = as_str(document.get("title")) or tracking_id
    vulnerabilities = [v for v in as_list(doc.get("vulnerabilities")) if isinstance(v, dict)]
    references = [r for r in as_list(document.get("references")) if isinstance(r, dict)]
    ref_urls = [as_str(r.get("url")) for r in references if as_str(r.get("url"))]
    cves = unique(as_str(v.get("cve")).upper() for v in vulnerabilities)
    cwes = unique(as_str(as_dict(v.get("cwe")).get("id")).upper() for v in vulnerabilities)
    aliases = [as_str(a) for a in as_list(tracking.get("aliases"))]
    products = _products(as_dict(doc.get("product_tree")), _statuses(vulnerabilities))
    cvss_score, severity = _best_score(vulnerabilities)
    if severity is None:  # Red Hat and others rate the whole document instead ("Important")
        severity = as_str(as_dict(document.get("aggregate_severity")).get("text")).upper() or None

    return Advisory(
        source=source,
        kind=SourceKind.CSAF,
        entry_id=tracking_id,
        advisory_id=tracking_id,
        title=title,
        url=_web_url(references),
        published=parse_datetime(as_str(tracking.get("initial_release_date"))),
        updated=parse_datetime(as_str(tracking.get("current_release_date"))),
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

    for product_id, entry in _branch_leaves(as_list(tree.get("branches"))):
        add(product_id, entry)
    for fpn in as_list(tree.get("full_product_names")):
        fpn = as_dict(fpn)
        add(as_str(fpn.get("product_id")), _Entry("", as_str(fpn.get("name")), "", _model_numbers(fpn)))
    for rel in as_list(tree.get("relationships")):
        product_id, entry = _relationship(as_dict(rel), entries)
        add(product_id, entry)

    products = [
        Product(e.vendor, e.name, e.version, statuses.get(pid, ""), e.model_numbers) for pid, e in entries.items()
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
            category = as_str(node.get("category"))
            name = as_str(node.get("name"))
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
                full_name = as_str(product.get("name"))
                display = _join_names(n_names) or full_name or name
                entry = _Entry(n_vendor, display, " ".join(n_versions), _model_numbers(product))
                yield as_str(product.get("product_id")), entry
            yield from walk(as_list(node.get("branches")), n_vendor, n_names, n_versions, depth + 1)

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
    fpn = as_dict(rel.get("full_product_name"))
    component = known.get(as_str(rel.get("product_reference")))
    platform = known.get(as_str(rel.get("relates_to_product_reference")))
    name = as_str(fpn.get("name"))
    if not name and component and platform:
        name = f"{component.name} as a component of {platform.name}"
    vendor = (component.vendor if component else "") or (platform.vendor if platform else "")
    version = component.version if component else ""
    models = _model_numbers(fpn) or (component.model_numbers if component else ())
    return as_str(fpn.get("product_id")), _Entry(vendor, name, version, models)


def _model_numbers(product: dict[str, Any]) -> tuple[str, ...]:
    helper = as_dict(product.get("product_identification_helper"))
    return tuple(unique(as_str(m) for m in as_list(helper.get("model_numbers"))))


def _statuses(vulnerabilities: list[dict[str, Any]]) -> dict[str, str]:
    """product_id → the most telling status any vulnerability gives it."""
    best: dict[str, str] = {}
    for vuln in vulnerabilities:
        for status, ids in as_dict(vuln.get("product_status")).items():
            rank = _STATUS_RANK.get(status, _OTHER_STATUS_RANK)
            for product_id in as_list(ids):
                pid = as_str(product_id)
                current = best.get(pid)
                if current is None or rank < _STATUS_RANK.get(current, _OTHER_STATUS_RANK):
                    best[pid] = status
    return best


# --- document-level facts -------------------------------------------------------------------


def _web_url(references: list[dict[str, Any]]) -> str | None:
    """The `self` reference that is a web page rather than the JSON file itself."""
    for ref in references:
        url = as_str(ref.get("url"))
        if as_str(ref.get("category")) == "self" and url and not url.lower().endswith(".json"):
            return url
    return None


def _revision(tracking: dict[str, Any], title: str) -> str | None:
    """The newest revision_history entry ("Initial", "Update A"), or a later "(Update X)" in the title."""
    history = [r for r in as_list(tracking.get("revision_history")) if isinstance(r, dict)]
    revision: str | None = None
    if history:
        newest = max(enumerate(history), key=lambda ir: (_revision_time(ir[1]), ir[0]))[1]
        revision = as_str(newest.get("legacy_version")) or as_str(newest.get("number")) or None
        if revision and _BARE_LETTER_RE.match(revision):
            revision = f"Update {revision.upper()}"  # older CISA files say just "A"
    elif as_str(tracking.get("version")):
        revision = as_str(tracking.get("version"))
    # CISA sometimes retitles for an update without adding its revision_history entry
    title_match = _TITLE_UPDATE_RE.search(title)
    if title_match:
        title_letter = title_match.group(1).upper()
        current = _UPDATE_LETTER_RE.match(revision or "")
        if current is None or current.group(1).upper() < title_letter:
            revision = f"Update {title_letter}"
    return revision


def _revision_time(entry: dict[str, Any]) -> float:
    parsed = parse_datetime(as_str(entry.get("date")))
    return parsed.timestamp() if parsed else float("-inf")


def _release_dates(tracking: dict[str, Any]) -> tuple[datetime, ...]:
    raw = [tracking.get("initial_release_date"), tracking.get("current_release_date")]
    raw.extend(as_dict(r).get("date") for r in as_list(tracking.get("revision_history")))
    dates = {d for d in (parse_datetime(as_str(v)) for v in raw) if d is not None}
    return tuple(sorted(dates))


def _summary(document: dict[str, Any], vulnerabilities: list[dict[str, Any]]) -> str:
    """The document's summary notes, then each vulnerability's summary/description, capped."""
    texts = [as_str(n.get("text")) for n in _notes(document) if n.get("category") == "summary"]
    for vuln in vulnerabilities:
        texts.extend(as_str(n.get("text")) for n in _notes(vuln) if n.get("category") in ("summary", "description"))
    parts = unique(_plain(t) for t in texts)
    return cap("\n\n".join(parts), SUMMARY_CAP)


def _remediations(vulnerabilities: list[dict[str, Any]]) -> tuple[str, ...]:
    found: list[str] = []
    for vuln in vulnerabilities:
        for rem in as_list(vuln.get("remediations")):
            rem = as_dict(rem)
            details = _plain(as_str(rem.get("details")))
            if details:
                category = as_str(rem.get("category")) or "remediation"
                found.append(f"{category}: {details}")
    return tuple(unique(found))


def _best_score(vulnerabilities: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    """Highest CVSS v3 base score and its severity; CVSS v2 only when no v3 score exists."""
    for key, severity_of in (("cvss_v3", _v3_severity), ("cvss_v2", _v2_severity)):
        best: tuple[float, str] | None = None
        for vuln in vulnerabilities:
            for score in as_list(vuln.get("scores")):
                cvss = as_dict(as_dict(score).get(key))
                value = cvss.get("baseScore")
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                severity = as_str(cvss.get("baseSeverity")).upper() or severity_of(float(value))
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
    if as_str(tracking.get("version")):
        extra.append(("tracking_version", as_str(tracking.get("version"))))
    for note in _notes(document):
        # CISA's sector note is how a reader tells a healthcare advisory from an industrial one
        if as_str(note.get("title")).lower() == "critical infrastructure sectors" and as_str(note.get("text")):
            extra.append(("sectors", as_str(note.get("text"))))
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
    return [n for n in as_list(obj.get("notes")) if isinstance(n, dict)]


def _plain(text: str) -> str:
    """Plain text; HTML is only unwrapped when real tags are present ("< 8.2" is not a tag)."""
    if _HTML_TAG_RE.search(text):
        return html_to_text(text)
    return fold_spaces(text)
