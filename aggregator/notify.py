"""Alerts: decide what is new or changed for each (event, device), write it to the outbox, deliver via Apprise."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregator.config import NotifyConfig, NotifyTarget
from aggregator.models import Advisory, EventMatch, SourceKind
from aggregator.store import PendingDelivery, Store, StoredMatch, now_utc, retry_delay

log = logging.getLogger(__name__)

STDOUT_TARGET = NotifyTarget("stdout://", "stdout")


def targets_of(notify: NotifyConfig) -> tuple[NotifyTarget, ...]:
    """Where alerts go: the configured Apprise URLs, else stdout (printing counts as delivery)."""
    return notify.targets or (STDOUT_TARGET,)


DELIVERY_TIMEOUT = 60.0
_KIND_LABEL = {
    SourceKind.CSAF: "CISA CSAF advisory",
    SourceKind.RSS: "feed item",
    SourceKind.OPENFDA: "openFDA recall record",
    SourceKind.PAGE: "manufacturer page",
}
_ADVICE = (
    "What to do: read the advisory and the manufacturer's instructions, and talk to your clinician, "
    "device supplier or biomedical engineering team before changing how you use the device. "
    "Do not stop a therapy on your own."
)


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A delivery that did not go through this time (the alert stays queued)."""

    label: str
    alert_id: int
    error: str


# -- what is material ------------------------------------------------------------------------


def material_summary(em: EventMatch) -> dict[str, Any]:
    """The facts whose change deserves an update alert, for one (event, device)."""
    members = em.event.members
    products = sorted(
        {
            f"{p.vendor} {p.name}: {p.version or 'versions not stated'} [{p.status or 'listed'}]"
            for m in em.matches
            for p in m.matched_products
        }
    )
    remediations = sorted({r for a in members for r in a.remediations})
    scores = [a.cvss_score for a in members if a.cvss_score is not None]
    return {
        "affected": em.affected,
        "revision": em.event.primary.revision,
        "cves": sorted({c for a in members for c in a.cves}),
        "cvss": max(scores) if scores else None,
        "severity": em.event.primary.severity,
        "products": products,
        "remediations": remediations,
    }


def fingerprint(summary: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Plain sentences for what changed between two material summaries; [] when nothing material did.

    Details a second source merely adds (products or remediations where there were none) are not
    news; a change to what was already said is.
    """
    changes: list[str] = []
    if old.get("revision") != new.get("revision") and new.get("revision"):
        changes.append(f"the advisory was revised ({old.get('revision') or 'first version'} -> {new['revision']})")
    if old.get("affected") != new.get("affected"):
        changes.append(
            f"the verdict for your device changed: {_verdict(old.get('affected'))} -> {_verdict(new.get('affected'))}"
        )
    added_cves = sorted(set(new.get("cves", [])) - set(old.get("cves", [])))
    if added_cves and old.get("cves"):
        changes.append("new CVEs: " + ", ".join(added_cves))
    if old.get("cvss") is not None and old.get("cvss") != new.get("cvss"):
        changes.append(f"severity changed: CVSS {old.get('cvss')} -> {new.get('cvss')}")
    for key, what in (("products", "affected products or versions"), ("remediations", "remediation advice")):
        if old.get(key) and old.get(key) != new.get(key):
            added = sorted(set(new.get(key, [])) - set(old.get(key, [])))
            removed = sorted(set(old.get(key, [])) - set(new.get(key, [])))
            detail = "; ".join([*(f"now: {x}" for x in added), *(f"no longer: {x}" for x in removed)])
            changes.append(f"{what} changed ({detail})" if detail else f"{what} changed")
    return changes


# -- rendering -------------------------------------------------------------------------------


def _verdict(affected: object) -> str:
    if affected is True:
        return "yes"
    if affected is False:
        return "no: your version is outside the affected range"
    return "unknown: compare your device's version with the affected versions below"


def _date(value: datetime | None) -> str:
    return value.date().isoformat() if value else "date not given"


def render(em: EventMatch, kind: str, changes: Sequence[str] = ()) -> tuple[str, str]:
    """Subject and plain-text body of one alert."""
    primary = em.event.primary
    device = em.device
    verdict = {True: "affects", False: "lists, but not at your version,", None: "may affect"}[em.affected]
    prefix = "UPDATE: " if kind == "update" else ""
    subject = f'{prefix}{primary.display_id} {verdict} "{device.name}": {primary.title}'[:250]
    lines = [
        f'{"Updated advisory" if kind == "update" else "New advisory"} for your device "{device.name}" '
        f"({device.manufacturer} {', '.join(device.models)}"
        f"{', firmware ' + device.firmware if device.firmware else ''}).",
        "",
        f"Advisory: {primary.display_id}{f' ({primary.revision})' if primary.revision else ''}",
        f"Title: {primary.title}",
        f"Published: {_date(em.event.published)}",
    ]
    if primary.url:
        lines.append(f"Link: {primary.url}")
    if changes:
        lines += ["", "What changed:", *(f"  - {c}" for c in changes)]
    lines += ["", f"Is your device affected? {_verdict(em.affected)}", f"Why it matched: {em.why}"]
    products = [p for m in em.matches for p in m.matched_products]
    if products:
        lines.append("Affected versions, as the advisory gives them:")
        lines += sorted({f"  - {p.name}: {p.version or 'not stated'}" for p in products})
    cves = sorted({c for a in em.event.members for c in a.cves})
    scores = [a.cvss_score for a in em.event.members if a.cvss_score is not None]
    if cves:
        lines.append("CVEs: " + ", ".join(cves))
    if scores:
        lines.append(f"Severity: CVSS {max(scores)}{' ' + primary.severity if primary.severity else ''}")
    lines += _remediation_lines(em.event.members)
    lines += ["", _ADVICE, "", "Sources that carried this event:"]
    lines += [
        f'  - {_KIND_LABEL.get(a.kind, a.kind)} from "{a.source}": {a.display_id}'
        f"{' ' + a.url if a.url and a.url != primary.url else ''}"
        for a in em.event.members
    ]
    lines += ["", "-- aggregator: medical-device advisory watcher. You get one message per advisory and device."]
    return subject, "\n".join(lines)


_REMEDIATION_HEADINGS = {
    "vendor_fix": "What the manufacturer says to do",
    "mitigation": "Mitigations",
    "workaround": "Workarounds",
    "no_fix_planned": "No fix is planned",
    "none_available": "No fix is available yet",
}
MAX_REMEDIATION_LINES = 10


def _remediation_lines(members: Sequence[Advisory]) -> list[str]:
    """Remediations grouped by category, in the order the advisory gives them (sentences build on each other)."""
    grouped: dict[str, list[str]] = {}
    for adv in members:
        for item in adv.remediations:
            category, _, text = item.partition(": ")
            if not text:
                category, text = "", item
            texts = grouped.setdefault(category, [])
            if text not in texts:
                texts.append(text)
    lines: list[str] = []
    budget = MAX_REMEDIATION_LINES
    for category, texts in grouped.items():
        heading = _REMEDIATION_HEADINGS.get(category, "Remediation") + ", as published:"
        lines += ["", heading, *(f"  - {t[:600]}" for t in texts[:budget])]
        if len(texts) > budget:
            lines.append("  - (more in the advisory)")
        budget = max(budget - len(texts), 2)
    return lines


# -- the outbox ------------------------------------------------------------------------------


def queue_alerts(
    store: Store, event_matches: Sequence[EventMatch], notify: NotifyConfig, at: datetime | None = None
) -> int:
    """Write alerts for new and materially changed (event, device) pairs; call inside a transaction.

    Returns how many alerts were queued. Each alert gets one delivery row per current target, so a
    target added later only receives what comes after it.
    """
    at = at or now_utc()
    stored: dict[tuple[str, str], StoredMatch] = store.stored_matches()
    targets = targets_of(notify)
    queued = 0
    for em in event_matches:
        summary = material_summary(em)
        digest = fingerprint(summary)
        previous = stored.get((em.event.event_id, em.device.name))
        if previous is not None and previous.match_hash == digest:
            continue
        store.save_match(em.event.event_id, em.device.name, digest, summary, at)
        if previous is None:
            kind, changes = "new", []
        else:
            changes = describe_changes(previous.summary, summary)
            if not changes:
                continue
            kind = "update"
        if em.affected is False and notify.skip_unaffected:
            log.info("not alerting %s for %s: firmware outside the affected range", em.device.name, em.event.event_id)
            continue
        subject, body = render(em, kind, changes)
        store.add_alert(
            em.event.event_id, em.device.name, kind, subject, body, [(t.key, t.masked) for t in targets], at
        )
        log.info("queued %s alert: %s for %s", kind, em.event.event_id, em.device.name)
        queued += 1
    return queued


def queue_notice(store: Store, notify: NotifyConfig, key: str, kind: str, subject: str, body: str, at: datetime) -> int:
    """Queue an operational notice (a source failing or recovered) to every target; inside a transaction."""
    targets = targets_of(notify)
    alert_id = store.add_alert(key, "", kind, subject, body, [(t.key, t.masked) for t in targets], at)
    log.info("queued %s notice for %s", kind, key)
    return alert_id


class Notifier:
    """Delivers due outbox rows, one Apprise call per (alert, target)."""

    def __init__(self, store: Store, notify: NotifyConfig) -> None:
        self.store = store
        self.notify = notify
        self.targets = {t.key: t for t in targets_of(notify)}

    async def deliver_due(self, at: datetime | None = None) -> tuple[int, list[DeliveryFailure]]:
        """Send every due delivery; returns (delivered count, failures).

        Targets are served side by side, each in alert order, so a dead or hanging target costs the
        others nothing. After a target fails once in a cycle, its other due alerts are deferred with
        the same reason instead of each waiting out the same timeout.
        """
        at = at or now_utc()
        per_target: dict[str, list[PendingDelivery]] = {}
        for pending in self.store.due_deliveries(at, self.targets):
            per_target.setdefault(pending.target, []).append(pending)
        results = await asyncio.gather(*(self._deliver_to(self.targets[k], rows) for k, rows in per_target.items()))
        delivered = sum(count for count, _ in results)
        failures = [failure for _, target_failures in results for failure in target_failures]
        return delivered, failures

    async def _deliver_to(
        self, target: NotifyTarget, rows: Sequence[PendingDelivery]
    ) -> tuple[int, list[DeliveryFailure]]:
        delivered = 0
        failures: list[DeliveryFailure] = []
        first_error: str | None = None
        for pending in rows:
            if first_error is None:
                error = await self._send(target, pending)
                first_error = error
            else:
                error = f"deferred: this target failed earlier in the cycle ({first_error})"
            done_at = now_utc()
            with self.store.transaction():
                if error is None:
                    self.store.mark_delivered(pending.alert_id, pending.target, done_at)
                else:
                    retry_at = done_at + retry_delay(pending.attempts + 1)
                    self.store.mark_failed(pending.alert_id, pending.target, error, retry_at)
            if error is None:
                delivered += 1
                log.info("delivered alert %d to %s", pending.alert_id, target.masked)
                continue
            failures.append(DeliveryFailure(target.masked, pending.alert_id, error))
            level = logging.ERROR if pending.attempts + 1 >= self.notify.max_attempts else logging.WARNING
            log.log(
                level,
                "delivery of alert %d to %s failed (attempt %d): %s",
                pending.alert_id,
                target.masked,
                pending.attempts + 1,
                error,
            )
        return delivered, failures

    async def _send(self, target: NotifyTarget, pending: PendingDelivery) -> str | None:
        if target.key == STDOUT_TARGET.key:
            sys.stdout.write(f"{pending.subject}\n\n{pending.body}\n\n")
            sys.stdout.flush()
            return None
        return await send_apprise(target, pending.subject, pending.body)


async def send_apprise(target: NotifyTarget, title: str, body: str) -> str | None:
    """One message to one Apprise URL; None on success, else a reason without secrets."""
    import apprise  # lazily: only the notifying commands pay for importing it

    client = apprise.Apprise()
    if not client.add(target.url):
        return "Apprise does not understand this URL"
    try:
        ok = await asyncio.wait_for(
            asyncio.to_thread(client.notify, body=body, title=title, body_format=apprise.NotifyFormat.TEXT),
            timeout=DELIVERY_TIMEOUT,
        )
    except TimeoutError:
        return f"no answer within {DELIVERY_TIMEOUT:g}s"
    except Exception as exc:  # Apprise plugins raise anything; one target must not stop the rest
        return f"{exc.__class__.__name__}: {exc}"[:300]
    return None if ok else "the notification service did not accept the message (see log above)"
