"""Promise 2, crash safety: the real daemon (`python -m aggregator run`, its own process, 1 s interval) is
killed with SIGKILL at random moments while its feed gains one real CISA item every 0.5-1 s, and
restarted on the same state file after every kill. At the end it runs to quiescence and stops on SIGTERM.

Expected alerts are the (event, device) pairs `aggregator scan` reports over the final feed (read-only,
same config); delivered ones are the messages a real local SMTP server (aiosmtpd) received, keyed by
subject and mapped to (event, device) through the state file's alerts. No expected alert may be missing,
and a duplicate is only possible for a delivery in flight at a kill, so at most one per kill.

The kill moments come from random.Random(SEED), repeatable; set AGGREGATOR_CRASH_SEED to try others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import (
    PROJECT,
    FeedServer,
    MailCollector,
    SmtpServer,
    fixture_bytes,
    free_port,
    run_cli,
    write_config,
)

SEED = int(os.environ.get("AGGREGATOR_CRASH_SEED", "20250611"))
KILLS = 24
ALL_FEED = fixture_bytes("rss", "cisa-icsma-all.xml")
HEAD = ALL_FEED[: ALL_FEED.index(b"<item>")]
# The 48 newest real items, oldest first: published one by one, as CISA does.
ITEMS = re.findall(rb"<item>.*?</item>", ALL_FEED, re.DOTALL)[:48][::-1]
FIRST = 3  # items in the feed when the first daemon starts

WATCH = [
    ("MicroDicom viewer", "MicroDicom", ["DICOM Viewer"]),
    ("Sante viewer", "Santesoft", ["Sante DICOM Viewer Pro", "Sante FFT Imaging", "Sante PACS Server"]),
    ("RadiAnt", "Medixant", ["RadiAnt DICOM Viewer"]),
    ("GDCM", "Grassroots", ["Grassroots DICOM (GDCM)"]),
    (
        "Baxter devices",
        "Baxter",
        ["Welch Allyn Connex Spot Monitor", "Life2000 Ventilation System", "Connex Health Portal"],
    ),
    ("Philips imaging", "Philips", ["IntelliSpace Cardiovascular", "Vue PACS"]),
    ("Medtronic", "Medtronic", ["MyCareLink Patient Monitor", "Paceart Optima System"]),
    ("Orthanc", "Orthanc", ["Orthanc Server", "Osimis Web Viewer"]),
    ("Qardio", "Qardio", ["QardioARM A100"]),
    ("Mira", "Mira", ["Mira Hormone Monitor"]),
    ("Flow", "Flow Neuroscience", ["FL-100"]),
    ("OHIF", "OHIF", ["OHIF Viewers"]),
    ("Nihon Kohden monitor", "Nihon Kohden", ["CNS-6201"]),
    ("OsiriX", "Pixmeo", ["OsiriX MD"]),
    ("INFINITT PACS", "INFINITT Healthcare", ["INFINITT PACS"]),
    ("Synapse", "FUJIFILM", ["Synapse Mobility"]),
    ("BioFlo", "Eppendorf", ["BioFlo 320"]),
    ("Genetic analyzer", "Thermo Fisher", ["Applied Biosystems Genetic Analyzers"]),
    ("Wheelchair", "WHILL", ["Model C2"]),
]


class SlowCollector(MailCollector):
    """Takes 0.3 s to accept each message, so that kills often land while a delivery is in flight. It
    keeps a message even when the sender is gone by then, as a real mail server may."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.3)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    collector = SlowCollector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SmtpServer(controller.port, collector)
    controller.stop()


def feed(count: int) -> bytes:
    """The feed after `count` items were published: newest first."""
    return HEAD + b"\n".join(reversed(ITEMS[:count])) + b"\n</channel></rss>\n"


def crash_config(folder: Path, url: str, notify_url: str) -> Path:
    watch = "".join(
        f"\n[[watch]]\nname = {json.dumps(name)}\nmanufacturer = {json.dumps(maker)}\nmodels = {json.dumps(models)}\n"
        for name, maker, models in WATCH
    )
    return write_config(
        folder,
        f"""
[daemon]
state = "state.sqlite3"
interval = "1s"

[[source]]
name = "cisa-icsma"
kind = "rss"
url = "{url}"
{watch}
[notify]
urls = ["{notify_url}"]
""",
    )


class GrowingFeed(threading.Thread):
    """Publishes one more item every 0.5-1 s until all are out (or `halt` is set)."""

    def __init__(self, server: FeedServer, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.server, self.rng = server, rng
        self.halt = threading.Event()
        self.published = FIRST

    def run(self) -> None:
        for count in range(FIRST + 1, len(ITEMS) + 1):
            if self.halt.wait(self.rng.uniform(0.5, 1.0)):
                return
            self.server.set("/icsma.xml", body=feed(count), etag=f'"v{count}"')
            self.published = count


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=PROJECT,
            env=env,
        )


def read_state(state: Path) -> tuple[dict[str, tuple[str, str]], Counter[tuple[str, str]], int, set[tuple[str, str]]]:
    """subject -> (event, device); alerts queued per pair; pending deliveries; the matches table's pairs."""
    if not state.exists():
        return {}, Counter(), 0, set()
    with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)) as db:
        rows = db.execute("SELECT subject, event_id, device FROM alerts WHERE device != ''").fetchall()
        pending = db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]
        matches = {(r[0], r[1]) for r in db.execute("SELECT event_id, device FROM matches")}
    return {r[0]: (r[1], r[2]) for r in rows}, Counter((r[1], r[2]) for r in rows), int(pending), matches


def expected_pairs(config: Path, final_feed: Path) -> set[tuple[str, str]]:
    scan = run_cli("scan", "--config", str(config), str(final_feed))
    assert scan.returncode == 0, scan.stderr
    return {(line["event"], line["device"]) for line in map(json.loads, scan.stdout.splitlines())}


def test_kill_9_at_random_moments_loses_no_alert(
    tmp_path: Path, feed_server: FeedServer, slow_smtp: SmtpServer
) -> None:
    rng = random.Random(SEED)
    url = feed_server.set("/icsma.xml", body=feed(FIRST), etag=f'"v{FIRST}"')
    config = crash_config(tmp_path, url, slow_smtp.apprise_url)
    state, log = tmp_path / "state.sqlite3", tmp_path / "daemon.log"
    grower = GrowingFeed(feed_server, random.Random(SEED + 1))
    kills_with_work_pending = 0
    proc = start_daemon(config, log)
    grower.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            _, _, pending, _ = read_state(state)
            kills_with_work_pending += pending > 0
            proc = start_daemon(config, log)

        grower.join(timeout=60)
        assert not grower.is_alive(), "the feed finished growing"
        final_feed = tmp_path / "final-feed.xml"
        final_feed.write_bytes(feed(len(ITEMS)))
        expected = expected_pairs(config, final_feed)

        # Quiescence: everything expected delivered, nothing pending, and nothing more arriving for a while.
        deadline = time.monotonic() + 45
        quiet_since, last_seen = time.monotonic(), -1
        while time.monotonic() < deadline:
            subjects, _, pending, _ = read_state(state)
            seen = len(slow_smtp.collector.messages)
            got = {subjects[str(m["Subject"])] for m in slow_smtp.collector.messages if str(m["Subject"]) in subjects}
            if seen != last_seen:
                quiet_since, last_seen = time.monotonic(), seen
            if pending == 0 and expected <= got and time.monotonic() - quiet_since > 2.5:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, "stopped cleanly on SIGTERM"
    finally:
        grower.halt.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    subjects, queued, pending, matches = read_state(state)
    delivered = Counter(str(m["Subject"]) for m in slow_smtp.collector.messages)
    delivered_pairs = {subjects[s] for s in delivered if s in subjects}
    counts: dict[str, Any] = {
        "seed": SEED,
        "kills": KILLS,
        "kills_with_deliveries_pending": kills_with_work_pending,
        "items_published": len(ITEMS),
        "expected": len(expected),
        "queued": sum(queued.values()),
        "delivered": len(delivered_pairs & expected),
        "messages": sum(delivered.values()),
        "duplicated": sum(n - 1 for n in delivered.values()),
        "lost": sorted(map(list, expected - delivered_pairs)),
        "unexpected": sorted(s for s in delivered if s not in subjects or subjects[s] not in expected),
        "queued_twice": sorted(map(list, (p for p, n in queued.items() if n > 1))),
        "pending_at_end": pending,
    }
    (tmp_path / "crash-counts.json").write_text(json.dumps(counts, indent=2))
    print(f"kill -9 loop: {json.dumps(counts)}")
    summary = f"{counts} (daemon log: {log})"
    assert len(expected) >= 20, f"most published items concern a watched device: {summary}"
    assert matches == expected, f"the state file matched what scan matches: {summary}"
    assert not counts["lost"], f"alerts lost: {summary}"
    assert not counts["queued_twice"] and not counts["unexpected"], summary
    assert counts["duplicated"] <= KILLS, f"more duplicates than kills: {summary}"
    assert pending == 0, summary
