"""One event told by three sources gives one alert per device; a revision gives an update; a re-publish nothing.

Runs the real daemon cycle in-process against real local servers: CISA CSAF documents from a local
folder (byte copies of ../shared/corpus/cisa-csaf-icsma files), the CISA-shaped RSS item and the
FDA-recall-shaped RSS item for the same event (../shared/corpus/derived-rss: real advisories and recalls,
rebuilt feed shape) served over HTTP, alerts printed to stdout (no targets).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.daemon import Daemon
from aggregator.store import Store
from tests.conftest import FIXTURES, FeedServer, fixture_bytes, write_config

CISA_ALL = fixture_bytes("rss", "cisa-icsma-all.xml")
FDA = fixture_bytes("rss", "fda-medical-device-recalls.xml")


def rss_with(feed: bytes, *needles: bytes) -> bytes:
    """The feed's channel with only the items containing one of `needles` (real items, fewer of them)."""
    head = feed.split(b"<item>", 1)[0]
    items = [i for i in re.findall(rb"<item>.*?</item>", feed, re.DOTALL) if any(n in i for n in needles)]
    assert items, needles
    return head + b"\n".join(items) + b"</channel></rss>"


@pytest.fixture
def setup(tmp_path: Path, feed_server: FeedServer) -> tuple[Path, Path]:
    csaf = tmp_path / "csaf"
    csaf.mkdir()
    shutil.copy(FIXTURES / "events" / "icsma-19-178-01.json", csaf)
    cisa_url = feed_server.set("/icsma.xml", body=rss_with(CISA_ALL, b">ICSMA-19-178-01<"))
    fda_url = feed_server.set(
        "/recalls.xml", body=rss_with(FDA, b"medtronic-recalls-minimed-insulin-pumps-potential-cybersecurity-risks")
    )
    config = write_config(
        tmp_path,
        f"""
[daemon]
state = "state.sqlite3"

[[source]]
name = "cisa-csaf"
kind = "csaf"
path = "{csaf}"
backfill = "36500d"

[[source]]
name = "cisa-icsma"
kind = "rss"
url = "{cisa_url}"

[[source]]
name = "fda-recalls"
kind = "rss"
url = "{fda_url}"

[[watch]]
name = "minimed-508"
manufacturer = "Medtronic"
models = ["MiniMed 508", "MMT-508"]

[[watch]]
name = "paradigm-523"
manufacturer = "Medtronic"
models = ["Paradigm Revel 523", "MMT-523"]
firmware = "2.5A"
""",
    )
    return config, csaf / "icsma-19-178-01.json"


async def cycle(config_path: Path) -> list[dict[str, object]]:
    """One `run --once` cycle; returns the alerts it queued."""
    config = load_config(config_path)
    store = Store.open(config.state)
    try:
        before = {a["id"] for a in store.alert_report()}
        report = await Daemon(config, store).run_once()
        assert report.ok, (report.failed_sources, report.delivery_failures)
        return [a for a in store.alert_report() if a["id"] not in before]
    finally:
        store.close()


async def test_one_event_three_sources_then_update_then_nothing(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, document = setup
    first = await cycle(config)
    assert sorted((a["event_id"], a["device"], a["kind"]) for a in first) == [
        ("ICSMA-19-178-01", "minimed-508", "new"),
        ("ICSMA-19-178-01", "paradigm-523", "new"),
    ]
    out = capsys.readouterr().out
    assert out.count("Sources that carried this event:") == 2
    for carried in (
        'CISA CSAF advisory from "cisa-csaf"',
        'feed item from "cisa-icsma"',
        'feed item from "fda-recalls"',
    ):
        assert out.count(carried) == 2, carried
    assert "firmware 2.5A is outside" in out

    # The vendor revises the advisory: 523/723 now affected up to 2.6A.
    doc = json.loads(document.read_text())
    tracking = doc["document"]["tracking"]
    tracking["revision_history"].append(
        {"date": "2019-07-10T00:00:00.000000Z", "legacy_version": "Update A", "number": "2", "summary": "Update A"}
    )
    tracking["current_release_date"] = "2019-07-10T00:00:00.000000Z"
    tracking["version"] = "2"
    text = json.dumps(doc).replace('"<= 2.4A"', '"<= 2.6A"')
    document.write_text(text)
    second = await cycle(config)
    assert sorted((a["device"], a["kind"]) for a in second) == [("minimed-508", "update"), ("paradigm-523", "update")]
    out = capsys.readouterr().out
    assert 'UPDATE: ICSMA-19-178-01 affects "paradigm-523"' in out
    assert "the verdict for your device changed: no: your version is outside the affected range -> yes" in out
    assert "the advisory was revised (Initial -> Update A)" in out

    # CISA re-publishes the same content, rewritten (new key order, new timestamp, same version): nothing.
    doc = json.loads(document.read_text())
    doc["document"]["tracking"]["current_release_date"] = "2019-07-11T00:00:00.000000Z"
    document.write_text(json.dumps(doc, indent=2, sort_keys=True))
    assert await cycle(config) == []
    assert await cycle(config) == []
