"""Orchestration only: schedule polls, record results, queue and deliver alerts, handle signals."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import signal
import socket
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from aggregator.config import Config, SourceConfig
from aggregator.dedup import event_matches, fold
from aggregator.identifiers import unique
from aggregator.match import load_aliases, match_all
from aggregator.models import Advisory, FeedState, PollResult
from aggregator.notify import DeliveryFailure, Notifier, queue_alerts, queue_notice
from aggregator.sources import poll_source
from aggregator.sources.http import Fetcher, sleep_or_stop
from aggregator.sources.nvd import fetch_scores
from aggregator.store import Store, now_utc

log = logging.getLogger(__name__)

FAILURE_RETRY_MIN = 60.0


@dataclass
class CycleReport:
    """What one cycle did; `failed_sources` and `delivery_failures` decide the exit code of run --once."""

    polled: list[str] = field(default_factory=list)
    failed_sources: list[tuple[str, str]] = field(default_factory=list)
    new_items: int = 0
    alerts_queued: int = 0
    delivered: int = 0
    delivery_failures: list[DeliveryFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_sources and not self.delivery_failures


class Daemon:
    """Runs cycles over the configured sources against one state file."""

    def __init__(self, config: Config, store: Store, *, fetcher_options: dict[str, float] | None = None) -> None:
        self.config = config
        self.store = store
        self.aliases = load_aliases(config.aliases)
        self.notifier = Notifier(store, config.notify)
        self.fetcher_options = fetcher_options or {}
        self.stop = asyncio.Event()
        self._stale = True  # match everything once per process

    # -- one cycle -------------------------------------------------------------------------------

    async def run_once(self) -> CycleReport:
        """Poll every source, then deliver every due alert."""
        report = CycleReport()
        async with Fetcher.new_session() as session:
            fetcher = Fetcher(session, **self.fetcher_options)  # type: ignore[arg-type]
            await self.poll(list(self.config.sources), fetcher, report)
        if not self.stop.is_set():
            await self.deliver(report)
        return report

    async def poll(self, sources: Sequence[SourceConfig], fetcher: Fetcher, report: CycleReport) -> None:
        """Poll `sources` concurrently, record every result in one transaction, then queue alerts in another."""
        states = {s.name: self.store.feed_state(s.name) for s in sources}
        tasks = [asyncio.create_task(poll_source(s, fetcher, states[s.name])) for s in sources]
        stopper = asyncio.create_task(self.stop.wait())
        try:
            pending: set[asyncio.Task[Any]] = set(tasks)
            while pending and not self.stop.is_set():
                _done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stopper)
        finally:
            stopper.cancel()
            for task in tasks:
                task.cancel()
        finished = [(s, t.result()) for s, t in zip(sources, tasks, strict=True) if t.done() and not t.cancelled()]
        now = now_utc()
        with self.store.transaction():
            changed_before = report.new_items
            for source, (result, retry_after) in finished:
                self._record(source, states[source.name], result, retry_after, now, report)
        # Matching everything stored costs about a second per few thousand advisories: do it when
        # something changed, and once per process (the watch list may have changed since the last run).
        # A crash before the alerts are queued loses nothing: the next process matches again.
        self._stale = self._stale or report.new_items > changed_before
        if self._stale and not self.stop.is_set():
            advisories = self.store.advisories()
            if self.config.nvd is not None:
                await self._until_stopped(self._look_up_scores(advisories, fetcher))
            with self.store.transaction():
                report.alerts_queued += self._queue_alerts(advisories)
            self._stale = False

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work`, abandoning it when a stop is requested (SIGTERM must not wait for a slow server)."""
        task = asyncio.create_task(work)
        stopper = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            task.cancel()
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            log.error("NVD lookup stopped by an unexpected error: %s: %s", error.__class__.__name__, error)

    async def _look_up_scores(self, advisories: Sequence[Advisory], fetcher: Fetcher) -> None:
        """CVSS from NVD for CVEs that sources name without a score; a few per cycle, within NVD's limits."""
        nvd = self.config.nvd
        assert nvd is not None
        known = self.store.cve_scores()
        wanted = unique(c for a in advisories if a.cvss_score is None for c in a.cves if c not in known)
        if not wanted:
            return
        found, problems = await fetch_scores(
            fetcher,
            wanted[: nvd.max_per_cycle],
            url=nvd.url,
            api_key=nvd.api_key,
            spacing=nvd.spacing,
            stop=self.stop,
        )
        for problem in problems:
            log.warning("%s", problem)
        at = now_utc()
        with self.store.transaction():
            for score in found.values():
                self.store.save_cve_score(score.cve, score.score, score.severity, score.vector, at)
        log.info("NVD: looked up %d CVEs (%d still to do)", len(found), max(0, len(wanted) - nvd.max_per_cycle))

    def _record(
        self,
        source: SourceConfig,
        state: FeedState,
        result: PollResult,
        retry_after: float | None,
        now: datetime,
        report: CycleReport,
    ) -> None:
        report.polled.append(source.name)
        if result.ok:
            new_state = self._record_success(source, state, result, now, report)
        else:
            new_state = self._record_failure(source, state, result, retry_after, now, report)
        self.store.save_feed_state(new_state)

    def _record_success(
        self, source: SourceConfig, state: FeedState, result: PollResult, now: datetime, report: CycleReport
    ) -> FeedState:
        changed = self.store.upsert_advisories(result.advisories, now)
        report.new_items += changed
        for problem in result.problems:
            log.warning("source %s: %s", source.name, problem)
        if state.outcome == "failed":
            log.info("source %s recovered after %d failed polls", source.name, state.consecutive_failures)
        if state.failure_notified is not None:
            queue_notice(
                self.store,
                self.config.notify,
                f"source:{source.name}",
                "source-recovered",
                f"aggregator: source {source.name} works again",
                f'The source "{source.name}" ({source.kind}) was polled successfully again after '
                f"{state.consecutive_failures} failed polls. Advisories published meanwhile are picked up now.",
                now,
            )
        log.info(
            "polled %s: %s",
            source.name,
            "not modified" if result.not_modified else f"{len(result.advisories)} items, {changed} new or changed",
        )
        return replace(
            state,
            etag=result.etag,
            last_modified=result.last_modified,
            last_poll=now,
            last_success=now,
            outcome="not-modified" if result.not_modified else "ok",
            error=None,
            items=state.items if result.not_modified else len(result.advisories),
            consecutive_failures=0,
            next_poll=now + timedelta(seconds=_jittered(source.interval)),
            cursor=result.cursor if result.cursor is not None else state.cursor,
            failure_notified=None,
        )

    def _record_failure(
        self,
        source: SourceConfig,
        state: FeedState,
        result: PollResult,
        retry_after: float | None,
        now: datetime,
        report: CycleReport,
    ) -> FeedState:
        failures = state.consecutive_failures + 1
        report.failed_sources.append((source.name, result.error or "failed"))
        if failure_kind(state.error) != failure_kind(result.error):  # one log line per change of state
            log.error("source %s failed: %s", source.name, result.error)
        else:
            log.debug("source %s still failing (%d in a row): %s", source.name, failures, result.error)
        notified = state.failure_notified
        repeat = timedelta(seconds=self.config.notify.failure_repeat)
        if failures >= self.config.notify.failure_threshold and (notified is None or now - notified >= repeat):
            since = state.last_success.date().isoformat() if state.last_success else "never"
            queue_notice(
                self.store,
                self.config.notify,
                f"source:{source.name}",
                "source-failing",
                f"aggregator: source {source.name} is failing",
                f'The source "{source.name}" ({source.kind}) failed {failures} polls in a row.\n'
                f"Last error: {result.error}\nLast successful poll: {since}.\n\n"
                "Until it recovers, advisories from this source cannot reach you: silence from aggregator "
                "does not mean nothing was published. aggregator keeps retrying and will tell you when it works again.",
                now,
            )
            notified = now
        backoff = _jittered(min(source.interval, FAILURE_RETRY_MIN * 2 ** min(failures - 1, 10)))
        delay = max(backoff, retry_after or 0.0)  # jitter may delay a Retry-After, never undercut it
        return replace(
            state,
            last_poll=now,
            outcome="failed",
            error=result.error,
            consecutive_failures=failures,
            next_poll=now + timedelta(seconds=delay),
            failure_notified=notified,
        )

    def _queue_alerts(self, stored: Sequence[Advisory]) -> int:
        """Fold and match everything stored (new sources, new devices and late joiners all count)."""
        advisories = with_nvd_scores(stored, self.store.cve_scores()) if self.config.nvd else list(stored)
        events = fold(advisories, self.aliases)
        matches = match_all(advisories, self.config.watch, self.aliases)
        return queue_alerts(self.store, event_matches(events, matches), self.config.notify)

    async def deliver(self, report: CycleReport) -> None:
        delivered, failures = await self.notifier.deliver_due()
        report.delivered += delivered
        report.delivery_failures.extend(failures)

    # -- the daemon loop -----------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Poll each source on its own schedule until SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        log.info(
            "aggregator started: %d sources, %d watched devices, state %s",
            len(self.config.sources),
            len(self.config.watch),
            self.store.path,
        )
        sd_notify("READY=1")
        watchdog = asyncio.create_task(_watchdog_pings())
        try:
            await self._loop()
        finally:
            watchdog.cancel()
        sd_notify("STOPPING=1")
        log.info("aggregator stopped")

    async def _loop(self) -> None:
        async with Fetcher.new_session() as session:
            fetcher = Fetcher(session, **self.fetcher_options)  # type: ignore[arg-type]
            while not self.stop.is_set():
                now = now_utc()
                due = [s for s in self.config.sources if _is_due(self.store.feed_state(s.name), now)]
                report = CycleReport()
                if due:
                    await self.poll(due, fetcher, report)
                if self.stop.is_set():
                    break
                await self.deliver(report)
                if await sleep_or_stop(self._seconds_until_next(now_utc()), self.stop):
                    break

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("received %s, stopping", sig.name)
        self.stop.set()

    def _seconds_until_next(self, now: datetime) -> float:
        candidates = []
        for source in self.config.sources:
            state = self.store.feed_state(source.name)
            candidates.append((state.next_poll - now).total_seconds() if state.next_poll else 0.0)
        next_delivery = self.store.next_delivery_time(self.notifier.targets)
        if next_delivery is not None:
            candidates.append((next_delivery - now).total_seconds())
        return max(0.5, min(candidates, default=3600.0))


def with_nvd_scores(
    advisories: Sequence[Advisory], scores: Mapping[str, tuple[float | None, str | None]]
) -> list[Advisory]:
    """Advisories without a CVSS score get the highest NVD score of the CVEs they name, marked as NVD's."""
    result = []
    for adv in advisories:
        known = [scores[c] for c in adv.cves if c in scores and scores[c][0] is not None]
        if adv.cvss_score is None and known:
            score, severity = max(known, key=lambda s: s[0] or 0.0)
            adv = replace(adv, cvss_score=score, severity=f"{severity} (NVD)" if severity else "(NVD)")
        result.append(adv)
    return result


def failure_kind(error: str | None) -> str | None:
    """An error with its varying details (byte counts, line:column, ports) folded, to tell a new failure
    from the same one again."""
    return re.sub(r"\d+", "#", error) if error else None


def _is_due(state: FeedState, now: datetime) -> bool:
    return state.next_poll is None or state.next_poll <= now


def _jittered(seconds: float) -> float:
    return seconds * random.uniform(0.9, 1.1)


async def _watchdog_pings() -> None:
    """Tell systemd's watchdog the event loop is alive, at half its timeout."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(int(usec) / 2e6)


def sd_notify(message: str) -> None:
    """The sd_notify protocol: one datagram to $NOTIFY_SOCKET; silent when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", address, exc)
