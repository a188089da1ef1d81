"""`scan`, `advisories` and `sources` as documented in the README (public interfaces)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS, FIXTURES, FeedServer, run_cli, write_config

SCAN_KEYS = {"advisory", "event", "source", "title", "url", "published", "device", "affected", "why", "sources"}
SUMMARY = re.compile(r"^scanned (\d+) advisories from (\d+) files \((\d+) unreadable, (\d+) skipped\), (\d+) matches$")


def watch_config(tmp_path: Path, feed_url: str = "http://127.0.0.1:9/never.xml") -> Path:
    return write_config(
        tmp_path,
        f"""
[daemon]
state = "state.sqlite3"

[[source]]
name = "cisa-icsma"
kind = "rss"
url = "{feed_url}"

[[watch]]
name = "pump"
manufacturer = "Medtronic"
models = ["MiniMed 508", "MMT-508"]

[[watch]]
name = "revel"
manufacturer = "Medtronic"
models = ["Paradigm Revel 523", "MMT-523"]
firmware = "2.5A"
""",
    )


def test_scan_lines_summary_and_read_only(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=b"")
    config = watch_config(tmp_path, url)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "icsma.xml").write_bytes((FIXTURES / "rss" / "cisa-icsma-all.xml").read_bytes())
    (folder / "sub").mkdir()
    (folder / "sub" / "icsma-19-178-01.json").write_bytes((FIXTURES / "events" / "icsma-19-178-01.json").read_bytes())
    (folder / "sub" / "README.md").write_text("# notes\n")
    (folder / "sub" / "changes.csv").write_text("csaf_files/OT/white/2019/icsma-19-178-01.json,2019-06-27\n")
    (folder / "broken.json").write_text('{"document": {"csaf_version": "2.0", "tracking": {"id": "X"')
    (folder / "broken.xml").write_text("<?xml version='1.0'?><rss version='2.0'><channel><item><title>x</ti")

    result = run_cli("scan", "--config", str(config), str(folder))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and all(set(r) == SCAN_KEYS for r in rows)
    pairs = {(r["advisory"], r["device"]): r for r in rows}
    assert len(pairs) == len(rows), "one line per (event, device)"
    pumps = pairs[("ICSMA-19-178-01", "pump")]
    assert pumps["source"] == "csaf", "the structured copy speaks for the event"
    assert pumps["affected"] is True
    assert {"kind": "rss", "id": "ICSMA-19-178-01"} in pumps["sources"]
    assert {"kind": "csaf", "id": "ICSMA-19-178-01"} in pumps["sources"]
    assert pumps["url"] == "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-19-178-01"
    assert pumps["published"].startswith("2019-06-27")
    assert pairs[("ICSMA-19-178-01", "revel")]["affected"] is False
    assert "2.4A" in pairs[("ICSMA-19-178-01", "revel")]["why"]

    err = result.stderr.strip().splitlines()
    summary = SUMMARY.match(err[-1])
    assert summary, err[-1]
    advisories, files, unreadable, skipped, matches = map(int, summary.groups())
    assert (advisories, files, unreadable, skipped, matches) == (190, 6, 2, 2, len(rows))
    assert any(line.startswith("unreadable: ") and "broken.json" in line for line in err)
    assert any(line.startswith("unreadable: ") and "broken.xml" in line for line in err)

    assert not (tmp_path / "state.sqlite3").exists(), "scan never creates the state file"
    assert feed_server.hits("/feed.xml") == [], "scan never touches the network"


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus not beside the project")
def test_scan_whole_corpus_has_nothing_unreadable(tmp_path: Path) -> None:
    result = run_cli("scan", "--config", str(watch_config(tmp_path)), str(CORPUS))
    assert result.returncode == 0
    summary = SUMMARY.match(result.stderr.strip().splitlines()[-1])
    assert summary, result.stderr[-500:]
    advisories, files, unreadable, skipped, _ = map(int, summary.groups())
    assert unreadable == 0
    assert advisories > 500 and skipped > 0 and files > advisories // 2


def test_advisories_and_sources_after_a_run(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.set("/feed.xml", body=(FIXTURES / "rss" / "cisa-icsma-all.xml").read_bytes())
    config = watch_config(tmp_path, url)
    assert run_cli("advisories", "--config", str(config)).returncode == 2, "no state file yet: a clear error"
    assert run_cli("run", "--once", "--config", str(config)).returncode == 0

    listed = run_cli("advisories", "--config", str(config), "--source", "cisa-icsma", "--since", "2025-01-01")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows and all(r["source"] == "cisa-icsma" and r["published"] >= "2025-01-01" for r in rows)
    assert [r["published"] for r in rows] == sorted((r["published"] for r in rows), reverse=True), "newest first"
    assert {"advisory", "source", "title", "url", "published", "updated"} <= set(rows[0])

    everything = [json.loads(line) for line in run_cli("advisories", "--config", str(config)).stdout.splitlines()]
    assert len(everything) == 189, "193 items, 189 distinct guids: an update repeats its advisory's guid"
    vue = [r for r in everything if r["advisory"] == "ICSMA-21-187-01"]
    assert [r["title"] for r in vue] == ["Philips Vue PACS (Update C)"], "the latest revision is kept"

    sources = run_cli("sources", "--config", str(config))
    (row,) = [json.loads(line) for line in sources.stdout.splitlines()]
    assert row["source"] == "cisa-icsma" and row["outcome"] == "ok" and row["items"] == 189
    assert row["next_poll"] > row["last_poll"]

    bad = run_cli("advisories", "--config", str(config), "--since", "yesterday")
    assert bad.returncode == 2
