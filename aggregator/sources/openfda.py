"""openFDA device recall / enforcement responses → Advisory (one per recall record). Pure."""

from __future__ import annotations

import codecs
import json
import re
from datetime import UTC, datetime
from typing import Any

from aggregator.errors import ParseError
from aggregator.identifiers import all_identifiers, parse_datetime, recall_numbers
from aggregator.models import Advisory, Product, SourceKind
from aggregator.sources.jsonvalues import as_dict, as_str, cap, fold_spaces

RES_URL = "https://www.accessdata.fda.gov/scripts/cdrh/cfdocs/cfRES/res.cfm?id={}"
TITLE_CAP = 200
SUMMARY_CAP = 2000
_ID_KEYS = ("product_res_number", "recall_number", "cfres_id", "res_event_number", "event_id")
# Dates that mean "something new was said about this recall"; `updated` is the latest of them.
_UPDATE_DATE_KEYS = (
    "event_date_posted",
    "event_date_created",
    "report_date",
    "center_classification_date",
    "event_date_terminated",
    "termination_date",
)
_US_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# The legacy scraped enforcement reports glue the notification method onto the firm:
# "Zimmer Inc. Warsaw, IN, by letters dated March 16, 2004. Firm initiated recall is ongoing."
_FIRM_TAIL_RE = re.compile(
    r",?\s+by\s+(?:letters?|telephone|phone|e-?mail|fax|visits?|press|certified|overnight|personal)\b.*$",
    re.IGNORECASE | re.DOTALL,
)
_FIRM_PREFIX_RE = re.compile(r"^\s*Recalling Firm:\s*", re.IGNORECASE)


def is_openfda(doc: object) -> bool:
    """True when `doc` (parsed JSON) looks like an openFDA device recall or enforcement response."""
    if not isinstance(doc, dict) or not isinstance(doc.get("meta"), dict):
        return False
    results = doc.get("results")
    if not isinstance(results, list):
        return False
    if not results:
        return True  # an empty page of a search still has the openFDA envelope
    return any(isinstance(r, dict) and any(k in r for k in _ID_KEYS) for r in results)


def is_not_found(doc: object) -> bool:
    """True for openFDA's answer to a search that matched nothing: {"error": {"code": "NOT_FOUND"}}."""
    if not isinstance(doc, dict):
        return False
    error = doc.get("error")
    return isinstance(error, dict) and str(error.get("code", "")).strip().upper() == "NOT_FOUND"


def total_results(doc: dict[str, Any]) -> int:
    """meta.results.total of a response (how many records the search matched); 0 if absent."""
    total = as_dict(as_dict(as_dict(doc).get("meta")).get("results")).get("total")
    if isinstance(total, bool):
        return 0
    if isinstance(total, int):
        return max(total, 0)
    if isinstance(total, str) and total.strip().isdigit():
        return int(total.strip())
    return 0


def parse_openfda(body: bytes, *, source: str) -> list[Advisory]:
    """One openFDA JSON response → one Advisory per device recall record ([] for NOT_FOUND)."""
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ParseError(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ParseError("not an openFDA response: top level is not an object")
    return parse_openfda_records(doc, source=source)


def parse_openfda_records(doc: dict[str, Any], *, source: str) -> list[Advisory]:
    """Advisories from an already-parsed openFDA response; error bodies other than NOT_FOUND raise.

    Records without any recall number, and records of other product types (food, drugs...), are
    skipped rather than failing the whole page.
    """
    if not isinstance(doc, dict):
        raise ParseError("not an openFDA response: top level is not an object")
    if "error" in doc:
        if is_not_found(doc):
            return []
        error = as_dict(doc.get("error"))
        code = as_str(error.get("code")) or "unknown"
        message = as_str(error.get("message"))
        raise ParseError(f"openFDA error {code}" + (f": {message}" if message else ""))
    results = doc.get("results")
    if not isinstance(results, list):
        raise ParseError("not an openFDA response: no 'results' list")
    advisories: list[Advisory] = []
    for raw in results:
        if isinstance(raw, dict):
            advisory = _record(_normalise_keys(raw), source)
            if advisory is not None:
                advisories.append(advisory)
    return advisories


def _record(rec: dict[str, Any], source: str) -> Advisory | None:
    product_type = as_str(rec.get("product_type")).lower()
    if product_type and product_type not in ("devices", "device"):
        return None
    # the product name keeps the description as published: model lists are laid out line by line
    description = as_str(rec.get("product_description")).replace("\r\n", "\n")
    reason = _text(rec.get("reason_for_recall"))
    recall_id = (as_str(rec.get("product_res_number")) or as_str(rec.get("recall_number"))).upper()
    if not recall_id:
        # the legacy enforcement-report scrape only names the number inside the description
        found = recall_numbers(description)
        recall_id = found[0] if found else ""
    entry_id = recall_id or _fallback_id(rec)
    if not entry_id:
        return None

    firm = _firm(as_str(rec.get("recalling_firm")))
    first_line = next((line for line in _text(description).splitlines() if line), "")
    title = cap(f"{firm}: {first_line}" if firm and first_line else firm or first_line or recall_id, TITLE_CAP)
    cfres_id = as_str(rec.get("cfres_id"))
    update_dates = [d for d in (_date(rec.get(k)) for k in _UPDATE_DATE_KEYS) if d is not None]
    published = (
        _date(rec.get("event_date_initiated"))
        or _date(rec.get("recall_initiation_date"))
        or (min(update_dates) if update_dates else None)  # legacy reports carry only report_date
    )

    return Advisory(
        source=source,
        kind=SourceKind.OPENFDA,
        entry_id=entry_id,
        advisory_id=recall_id or None,
        title=title,
        url=RES_URL.format(cfres_id) if cfres_id else None,
        published=published,
        updated=max(update_dates) if update_dates else None,
        summary=_summary(reason, _text(rec.get("action")), _text(rec.get("code_info"))),
        identifiers=all_identifiers(recall_id, description, reason),
        products=(
            (Product(vendor=firm, name=description, version="", status="known_affected"),) if description else ()
        ),
        severity=_severity(rec),
        manufacturer=firm or None,
        extra=_extra(rec),
    )


def _fallback_id(rec: dict[str, Any]) -> str:
    """An id for a record that names no recall number (trimmed examples, records not yet numbered)."""
    cfres_id = as_str(rec.get("cfres_id"))
    if cfres_id:
        return f"CFRES-{cfres_id}"
    event = as_str(rec.get("res_event_number")) or as_str(rec.get("event_id"))
    return f"EVENT-{event}" if event else ""


def _severity(rec: dict[str, Any]) -> str | None:
    classification = as_str(rec.get("classification"))
    if classification:
        return classification
    device_class = as_dict(rec.get("openfda")).get("device_class")
    if isinstance(device_class, list):  # some openFDA endpoints wrap every openfda field in a list
        device_class = device_class[0] if device_class else None
    device_class = as_str(device_class)
    # openFDA uses "N"/"U"/"f" for unclassified devices: only a real class 1-3 is worth showing
    return f"Class {'I' * int(device_class)}" if device_class in ("1", "2", "3") else None


def _extra(rec: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    facts = (
        ("event_number", as_str(rec.get("res_event_number")) or as_str(rec.get("event_id"))),
        ("status", as_str(rec.get("recall_status")) or as_str(rec.get("status"))),
        ("product_code", as_str(rec.get("product_code"))),
        ("quantity", as_str(rec.get("product_quantity"))),
    )
    return tuple((key, value) for key, value in facts if value)


def _summary(reason: str, action: str, code_info: str) -> str:
    parts = [reason]
    if action:
        parts.append(f"Action: {action}")
    if code_info:
        parts.append(f"Code info: {code_info}")
    return cap("\n\n".join(p for p in parts if p), SUMMARY_CAP)


def _firm(raw: str) -> str:
    return _FIRM_TAIL_RE.sub("", _FIRM_PREFIX_RE.sub("", raw)).strip().rstrip(",").strip()


def _date(value: object) -> datetime | None:
    """openFDA dates: YYYY-MM-DD, YYYYMMDD, and MM/DD/YYYY in the legacy reports."""
    text = as_str(value)
    parsed = parse_datetime(text)
    if parsed is None and (m := _US_DATE_RE.match(text)):
        try:
            parsed = datetime(int(m.group(3)), int(m.group(1)), int(m.group(2)), tzinfo=UTC)
        except ValueError:
            return None
    return parsed


def _normalise_keys(rec: dict[str, Any]) -> dict[str, Any]:
    """The legacy enforcement-report scrape spells keys with hyphens ("recalling-firm")."""
    if not any("-" in key for key in rec):
        return rec
    return {key.replace("-", "_"): value for key, value in rec.items()}


def _text(value: object) -> str:
    """Plain text with line structure kept (model lists are one per line), runs of spaces folded."""
    if not isinstance(value, str):
        return ""
    return fold_spaces(value)
