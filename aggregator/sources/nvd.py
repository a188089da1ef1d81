"""NVD CVE API 2.0: CVSS for CVEs that a source names without a score. Lookup by CVE id only.

Never keyword discovery: NVD keyword search floods a medical watch list with false positives.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aggregator.config import NVD_URL
from aggregator.errors import ParseError, SourceError
from aggregator.sources.http import Fetcher, sleep_or_stop
from aggregator.sources.jsonvalues import as_dict, as_list, as_str

log = logging.getLogger(__name__)

# Newest CVSS version first; within one, NVD's own ("Primary") score before a CNA's.
_METRIC_KEYS = ("cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2")


@dataclass(frozen=True, slots=True)
class CveScore:
    """NVD's CVSS base score for one CVE (score None: NVD knows the CVE but has not scored it)."""

    cve: str
    score: float | None
    severity: str | None
    vector: str | None = None


def parse_nvd(body: bytes) -> dict[str, CveScore]:
    """Scores from an API 2.0 response (`vulnerabilities[].cve`) or a bare `cve` record."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"NVD answer is not JSON: {exc}") from exc
    records = [as_dict(v).get("cve") for v in as_list(as_dict(doc).get("vulnerabilities"))]
    if not records and "metrics" in as_dict(doc):
        records = [doc]
    if not records and "vulnerabilities" not in as_dict(doc):
        raise ParseError("not an NVD CVE API 2.0 answer")
    scores = {}
    for record in records:
        score = _score(as_dict(record))
        if score is not None:
            scores[score.cve] = score
    return scores


def _score(record: dict[str, object]) -> CveScore | None:
    cve = as_str(record.get("id")).upper()
    if not cve:
        return None
    metrics = as_dict(record.get("metrics"))
    for key in _METRIC_KEYS:
        entries = sorted(
            (as_dict(m) for m in as_list(metrics.get(key))), key=lambda m: as_str(m.get("type")) != "Primary"
        )
        for entry in entries:
            data = as_dict(entry.get("cvssData"))
            base = data.get("baseScore")
            if isinstance(base, int | float) and not isinstance(base, bool):
                severity = as_str(data.get("baseSeverity") or entry.get("baseSeverity")).upper() or None
                return CveScore(cve, float(base), severity, as_str(data.get("vectorString")) or None)
    return CveScore(cve, None, None)


async def fetch_scores(
    fetcher: Fetcher,
    cves: Iterable[str],
    *,
    url: str = NVD_URL,
    api_key: str | None = None,
    spacing: float = 6.0,
    stop: asyncio.Event | None = None,
) -> tuple[dict[str, CveScore], list[str]]:
    """Look up each CVE, `spacing` seconds apart (NVD: 5 requests per 30 s without a key, 50 with one).

    Returns the scores found and one problem line per CVE that could not be looked up.
    """
    stop = stop or asyncio.Event()
    headers_key = {"apiKey": api_key} if api_key else {}
    found: dict[str, CveScore] = {}
    problems: list[str] = []
    for index, cve in enumerate(cves):
        if index and await sleep_or_stop(spacing, stop):
            break
        try:
            result = await fetcher.fetch(url, params={"cveId": cve}, headers=headers_key, accept="application/json")
            scores = parse_nvd(result.body or b"")
        except SourceError as exc:
            problems.append(f"NVD lookup of {cve} failed: {exc}")
            continue
        found[cve] = scores.get(cve, CveScore(cve, None, None))
    return found, problems
