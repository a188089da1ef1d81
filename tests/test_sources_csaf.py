"""CSAF provider polling (aggregator.sources.csaf_feed) against the real local feed server.

Fixtures in tests/fixtures/csaf_feed/:
- icsma-*.json: byte copies of the shared corpus's cisa-csaf-icsma/ (cisagov/CSAF `csaf_files/OT/white/`,
  commit 6960219f…; icsma-25-030-01.json from commit da6b300b…);
- cisa-csaf-ot-feed-tlp-white.json: CISA's real ROLIE feed (corpus cisa-csaf-meta/OT/) cut down to the
  entries of those documents, otherwise unchanged; the tests point its raw.githubusercontent.com links at
  the local server. The entry for ICSMA-25-030-01 (newer than the snapshot) is made in the test from an
  existing entry;
- changes.csv: the real changes.csv rows of those documents, in the real order (by path, not by date);
- provider-metadata.json / provider-metadata-directory.json: written for these tests in the documented
  shape (design/sources.md §2.5, the OASIS example-01-provider-metadata.json), not a real provider's file;
- *.json.sha512: made for these tests in `sha512sum` format. icsma-17-215-01.json.sha512 is deliberately
  wrong (it is the digest of another document); broken-icsma-18-219-02.json is the real file cut short
  at 4,000 bytes, with a digest that matches the cut bytes, so it fails as JSON, not as a digest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import SourceConfig
from aggregator.errors import BlockedError, SourceError
from aggregator.models import FeedState, PollResult, SourceKind
from aggregator.sources import csaf_feed, poll_source
from aggregator.sources.csaf_feed import poll_csaf
from aggregator.sources.http import Fetcher
from tests.conftest import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "csaf_feed"
REAL_ROOT = "https://raw.githubusercontent.com/"
FOLDER = "/cisagov/CSAF/develop/csaf_files/OT/white/"
FEED_PATH = FOLDER + "cisa-csaf-ot-feed-tlp-white.json"
META_PATH = "/.well-known/csaf/provider-metadata.json"
IN_FEED = [
    "icsma-24-249-01",
    "icsma-24-200-01",
    "icsma-23-061-01",
    "icsma-21-152-01",
    "icsma-18-219-02",
    "icsma-19-178-01",
    "icsma-17-215-01",
]
GOOD = {"ICSMA-24-249-01", "ICSMA-24-200-01", "ICSMA-23-061-01", "ICSMA-21-152-01", "ICSMA-19-178-01"}
SINCE_2010 = (datetime.now(UTC) - datetime(2010, 1, 1, tzinfo=UTC)).total_seconds()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher.new_session() as session:
        yield Fetcher(session, attempts=2, backoff_initial=0.01, max_retry_wait=1)


def doc_path(name: str) -> str:
    return f"{FOLDER}20{name.split('-')[1]}/{name}.json"


def local(server: FeedServer, text: str) -> bytes:
    return text.replace(REAL_ROOT, server.url("/")).encode()


def serve_documents(server: FeedServer, names: list[str], *, broken: bool = True) -> None:
    for name in names:
        stem = f"broken-{name}" if broken and name == "icsma-18-219-02" else name
        server.set(doc_path(name), body=(FIXTURES / f"{stem}.json").read_bytes(), content_type="application/json")
        server.set(
            doc_path(name) + ".sha512",
            body=(FIXTURES / f"{stem}.json.sha512").read_bytes(),
            content_type="text/plain",
        )


def feed_json() -> dict[str, Any]:
    feed: dict[str, Any] = json.loads((FIXTURES / "cisa-csaf-ot-feed-tlp-white.json").read_text())
    return feed


def serve_feed(server: FeedServer, feed: dict[str, Any], etag: str = '"feed-1"') -> None:
    server.set(FEED_PATH, body=local(server, json.dumps(feed)), content_type="application/json", etag=etag)


def serve_metadata(server: FeedServer, name: str = "provider-metadata.json") -> str:
    body = local(server, (FIXTURES / name).read_text())
    return server.set(META_PATH, body=body, content_type="application/json", etag='"pmd-1"')


def csaf_source(url: str | None = None, *, path: Path | None = None, backfill: float = SINCE_2010) -> SourceConfig:
    return SourceConfig(name="cisa-csaf", kind=SourceKind.CSAF, url=url, path=path, interval=3600, backfill=backfill)


def after(state: FeedState, result: PollResult) -> FeedState:
    """The state the daemon stores after a successful poll."""
    assert result.ok, result.error
    return replace(
        state,
        etag=result.etag,
        last_modified=result.last_modified,
        last_success=datetime.now(UTC),
        cursor=result.cursor if result.cursor is not None else state.cursor,
        items=state.items if result.not_modified else len(result.advisories),
    )


def ids(result: PollResult) -> set[str]:
    return {a.entry_id for a in result.advisories}


async def test_provider_metadata_to_rolie_to_documents(feed_server: FeedServer, fetcher: Fetcher) -> None:
    serve_documents(feed_server, IN_FEED)
    serve_feed(feed_server, feed_json())
    url = serve_metadata(feed_server)

    result, _ = await poll_source(csaf_source(url), fetcher, FeedState("cisa-csaf"))

    assert result.ok, result.error
    assert ids(result) == GOOD
    assert all(a.kind is SourceKind.CSAF and a.source == "cisa-csaf" for a in result.advisories)
    assert len(result.problems) == 2
    broken = next(p for p in result.problems if "icsma-18-219-02" in p)
    wrong = next(p for p in result.problems if "icsma-17-215-01" in p)
    assert "invalid JSON" in broken
    assert "sha512 mismatch" in wrong and "not stored" in wrong
    assert result.etag == '"pmd-1"'
    assert len(feed_server.hits(doc_path("icsma-24-249-01") + ".sha512")) == 1  # the digest was checked
    assert not feed_server.hits(FOLDER.replace("white", "green") + "feed-tlp-green.json")  # TLP:GREEN unread
    cursor = json.loads(result.cursor or "")
    assert cursor["kind"] == "metadata"
    assert {p["url"].rsplit("/", 1)[1] for p in cursor["pending"]} == {
        "icsma-18-219-02.json",
        "icsma-17-215-01.json",
    }


async def test_second_poll_reads_only_newer_entries_and_retries_failures(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    serve_documents(feed_server, [*IN_FEED, "icsma-25-030-01"])
    feed = feed_json()
    serve_feed(feed_server, feed)
    url = serve_metadata(feed_server)
    source = csaf_source(url)
    state = after(FeedState("cisa-csaf"), await poll_csaf(source, fetcher, FeedState("cisa-csaf")))

    # CISA republishes ICSMA-23-061-01, adds ICSMA-25-030-01 and repairs the broken file
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for entry in feed["feed"]["entry"]:
        if entry["id"] == "ICSMA-23-061-01":
            entry["updated"] = now
    template = json.dumps(feed["feed"]["entry"][0])  # ICSMA-24-249-01's entry
    new_entry = json.loads(template.replace("icsma-24-249-01", "icsma-25-030-01").replace("/2024/", "/2025/"))
    new_entry.update(id="ICSMA-25-030-01", title="Contec Health CMS8000 Patient Monitor", published=now, updated=now)
    feed["feed"]["entry"].insert(0, new_entry)
    serve_feed(feed_server, feed, etag='"feed-2"')
    serve_documents(feed_server, ["icsma-18-219-02"], broken=False)

    result = await poll_csaf(source, fetcher, state)

    assert result.ok
    assert ids(result) == {"ICSMA-23-061-01", "ICSMA-25-030-01", "ICSMA-18-219-02"}
    assert [p for p in result.problems if "icsma-17-215-01" in p]  # still a wrong digest: retried, reported
    assert len(result.problems) == 1
    assert feed_server.hits(META_PATH)[-1].get("If-None-Match") == '"pmd-1"'  # conditional GET on metadata
    assert feed_server.hits(FEED_PATH)[-1].get("If-None-Match") == '"feed-1"'  # ... and on the feed
    for name in ("icsma-24-249-01", "icsma-24-200-01", "icsma-21-152-01", "icsma-19-178-01"):
        assert len(feed_server.hits(doc_path(name))) == 1, name  # older entries are not fetched again
    assert len(feed_server.hits(doc_path("icsma-23-061-01"))) == 2
    assert len(feed_server.hits(doc_path("icsma-18-219-02"))) == 2
    assert len(feed_server.hits(doc_path("icsma-17-215-01"))) == 2


async def test_unchanged_feed_costs_one_request(feed_server: FeedServer, fetcher: Fetcher) -> None:
    good = [n for n in IN_FEED if n.upper() in GOOD]
    serve_documents(feed_server, good)
    feed = feed_json()
    feed["feed"]["entry"] = [e for e in feed["feed"]["entry"] if e["id"] in GOOD]
    serve_feed(feed_server, feed)
    source = csaf_source(feed_server.url(FEED_PATH))  # the ROLIE feed itself, no provider metadata
    first = await poll_csaf(source, fetcher, FeedState("cisa-csaf"))
    assert ids(first) == GOOD and not first.problems
    assert json.loads(first.cursor or "")["kind"] == "rolie"

    second = await poll_csaf(source, fetcher, after(FeedState("cisa-csaf"), first))

    assert second.not_modified and second.ok
    assert second.etag == '"feed-1"'
    assert sum(len(feed_server.hits(doc_path(n))) for n in good) == len(good)


async def test_first_poll_reads_only_the_backfill_window(feed_server: FeedServer, fetcher: Fetcher) -> None:
    serve_documents(feed_server, IN_FEED)
    serve_feed(feed_server, feed_json())
    since_2023 = (datetime.now(UTC) - datetime(2023, 1, 1, tzinfo=UTC)).total_seconds()

    result = await poll_csaf(
        csaf_source(feed_server.url(FEED_PATH), backfill=since_2023), fetcher, FeedState("cisa-csaf")
    )

    assert ids(result) == {"ICSMA-24-249-01", "ICSMA-24-200-01", "ICSMA-23-061-01"}
    assert not feed_server.hits(doc_path("icsma-19-178-01"))


async def test_changes_csv_of_a_directory_provider(feed_server: FeedServer, fetcher: Fetcher) -> None:
    """changes.csv is sorted by path, not date: ICSMA-18-219-02 (2021) comes after ICSMA-19-178-01 (2019)."""
    serve_documents(feed_server, IN_FEED, broken=False)
    feed_server.routes.pop(doc_path("icsma-24-200-01") + ".sha512")  # a document without a published digest
    feed_server.set(
        FOLDER + "changes.csv",
        body=(FIXTURES / "changes.csv").read_bytes(),
        content_type="text/csv",
        etag='"csv-1"',
    )
    url = serve_metadata(feed_server, "provider-metadata-directory.json")
    since_2021 = (datetime.now(UTC) - datetime(2021, 1, 1, tzinfo=UTC)).total_seconds()
    source = csaf_source(url, backfill=since_2021)

    result = await poll_csaf(source, fetcher, FeedState("cisa-csaf"))

    assert ids(result) == {
        "ICSMA-24-249-01",
        "ICSMA-24-200-01",
        "ICSMA-23-061-01",
        "ICSMA-21-152-01",
        "ICSMA-18-219-02",
    }
    assert not feed_server.hits(doc_path("icsma-19-178-01"))
    assert not feed_server.hits(doc_path("icsma-17-215-01"))
    assert not result.problems
    assert len(feed_server.hits(doc_path("icsma-24-200-01") + ".sha512")) == 1  # probed: 404, no digest

    # nothing changed: metadata and changes.csv answer 304, nothing else is fetched
    again = await poll_csaf(source, fetcher, after(FeedState("cisa-csaf"), result))
    assert again.not_modified
    assert feed_server.hits(FOLDER + "changes.csv")[-1].get("If-None-Match") == '"csv-1"'
    assert len(feed_server.hits(doc_path("icsma-24-249-01"))) == 1


async def test_changes_csv_given_directly(feed_server: FeedServer, fetcher: Fetcher) -> None:
    serve_documents(feed_server, IN_FEED)
    url = feed_server.set(FOLDER + "changes.csv", body=(FIXTURES / "changes.csv").read_bytes(), content_type="text/csv")
    result = await poll_csaf(csaf_source(url), fetcher, FeedState("cisa-csaf"))
    assert ids(result) == GOOD
    assert len(result.problems) == 2  # the cut-short file and the wrong digest, found by probing <doc>.sha512


async def test_block_page_instead_of_the_feed_fails_the_poll(feed_server: FeedServer, fetcher: Fetcher) -> None:
    apology = b"<!DOCTYPE html><html><head><title>Access Denied</title></head><body>Reference #18</body></html>"
    url = feed_server.set(FEED_PATH, body=apology, content_type="text/html")
    with pytest.raises(BlockedError, match="HTML page"):
        await poll_csaf(csaf_source(url), fetcher, FeedState("cisa-csaf"))
    result, _ = await poll_source(csaf_source(url), fetcher, FeedState("cisa-csaf"))
    assert not result.ok and "HTML page" in (result.error or "")


async def test_every_document_blocked_fails_the_poll(feed_server: FeedServer, fetcher: Fetcher) -> None:
    serve_feed(feed_server, feed_json())
    for name in IN_FEED:
        feed_server.set(doc_path(name), body=b"<html><body>Access Denied</body></html>", content_type="text/html")
    with pytest.raises(SourceError, match="all 7 documents failed to download"):
        await poll_csaf(csaf_source(feed_server.url(FEED_PATH)), fetcher, FeedState("cisa-csaf"))


async def test_metadata_without_white_feed_or_directory_fails(feed_server: FeedServer, fetcher: Fetcher) -> None:
    meta = json.loads((FIXTURES / "provider-metadata.json").read_text())
    meta["distributions"][0]["rolie"]["feeds"] = meta["distributions"][0]["rolie"]["feeds"][1:]  # GREEN only
    url = feed_server.set(META_PATH, body=json.dumps(meta).encode(), content_type="application/json")
    with pytest.raises(SourceError, match="no TLP:WHITE/CLEAR ROLIE feed"):
        await poll_csaf(csaf_source(url), fetcher, FeedState("cisa-csaf"))


async def test_one_failing_feed_is_a_problem_and_keeps_the_window(feed_server: FeedServer, fetcher: Fetcher) -> None:
    serve_documents(feed_server, IN_FEED)
    serve_feed(feed_server, feed_json())
    meta = json.loads((FIXTURES / "provider-metadata.json").read_text())
    missing = REAL_ROOT + "cisagov/CSAF/develop/csaf_files/IT/white/cisa-csaf-it-feed-tlp-clear.json"
    meta["distributions"].append({"rolie": {"feeds": [{"tlp_label": "CLEAR", "url": missing}]}})
    url = feed_server.set(META_PATH, body=local(feed_server, json.dumps(meta)), content_type="application/json")

    result = await poll_csaf(csaf_source(url), fetcher, FeedState("cisa-csaf"))

    assert ids(result) == GOOD
    [feed_problem] = [p for p in result.problems if "cisa-csaf-it-feed-tlp-clear.json" in p]
    assert "HTTP 404" in feed_problem
    cursor = json.loads(result.cursor or "")
    assert cursor["exact"] is True  # the next poll asks for the same window again
    assert datetime.fromisoformat(cursor["since"]) < datetime.now(UTC) - timedelta(days=365)


async def test_document_cap_continues_on_the_next_poll(
    feed_server: FeedServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csaf_feed, "MAX_DOCUMENTS", 3)
    good = [n for n in IN_FEED if n.upper() in GOOD]
    serve_documents(feed_server, good)
    feed = feed_json()
    feed["feed"]["entry"] = [e for e in feed["feed"]["entry"] if e["id"] in GOOD]
    serve_feed(feed_server, feed)
    source = csaf_source(feed_server.url(FEED_PATH))

    first = await poll_csaf(source, fetcher, FeedState("cisa-csaf"))
    assert ids(first) == {"ICSMA-19-178-01", "ICSMA-21-152-01", "ICSMA-23-061-01"}  # oldest first
    assert any("over the cap of 3" in p for p in first.problems)

    assert first.etag is None  # so the unchanged feed is read again, not answered with a 304
    second = await poll_csaf(source, fetcher, after(FeedState("cisa-csaf"), first))
    assert "If-None-Match" not in feed_server.hits(FEED_PATH)[-1]
    assert {"ICSMA-24-200-01", "ICSMA-24-249-01"} <= ids(second)
    assert not second.problems
    assert second.etag == '"feed-1"'
    assert len(feed_server.hits(doc_path("icsma-19-178-01"))) == 1


# --- a local folder (a clone of cisagov/CSAF) ---------------------------------------------------


def make_clone(root: Path) -> Path:
    """A folder laid out like cisagov/CSAF, every file dated 30 days back."""
    old = time.time() - 30 * 86400
    for name in IN_FEED:
        target = root / "csaf_files" / "OT" / "white" / f"20{name.split('-')[1]}" / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        stem = "broken-icsma-18-219-02" if name == "icsma-18-219-02" else name
        shutil.copyfile(FIXTURES / f"{stem}.json", target)
        shutil.copyfile(FIXTURES / f"{stem}.json.sha512", target.with_name(target.name + ".sha512"))
    shutil.copyfile(
        FIXTURES / "cisa-csaf-ot-feed-tlp-white.json",
        root / "csaf_files" / "OT" / "white" / "cisa-csaf-ot-feed-tlp-white.json",
    )  # not CSAF
    (root / ".git").mkdir()
    (root / ".git" / "junk.json").write_text("{")
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    return root


async def test_local_folder(tmp_path: Path, fetcher: Fetcher) -> None:
    clone = make_clone(tmp_path / "CSAF")
    since_2021 = (datetime.now(UTC) - datetime(2021, 1, 1, tzinfo=UTC)).total_seconds()
    source = csaf_source(path=clone, backfill=since_2021)

    first = await poll_csaf(source, fetcher, FeedState("cisa-csaf"))

    # the files are all 30 days old: the first poll goes by current_release_date
    assert ids(first) == {"ICSMA-24-249-01", "ICSMA-24-200-01", "ICSMA-23-061-01", "ICSMA-21-152-01"}
    assert len(first.problems) == 1 and "icsma-18-219-02.json" in first.problems[0]
    assert "invalid JSON" in first.problems[0]

    # a `git pull` rewrites one old advisory and repairs the broken one
    rewritten = clone / "csaf_files" / "OT" / "white" / "2019" / "icsma-19-178-01.json"
    os.utime(rewritten)
    repaired = clone / "csaf_files" / "OT" / "white" / "2018" / "icsma-18-219-02.json"
    shutil.copyfile(FIXTURES / "icsma-18-219-02.json", repaired)
    shutil.copyfile(FIXTURES / "icsma-18-219-02.json.sha512", repaired.with_name(repaired.name + ".sha512"))
    second = await poll_csaf(source, fetcher, after(FeedState("cisa-csaf"), first))
    assert ids(second) == {"ICSMA-19-178-01", "ICSMA-18-219-02"}
    assert not second.problems


async def test_local_folder_wrong_digest_is_a_problem(tmp_path: Path, fetcher: Fetcher) -> None:
    clone = make_clone(tmp_path / "CSAF")
    result = await poll_csaf(csaf_source(path=clone), fetcher, FeedState("cisa-csaf"))
    assert "ICSMA-17-215-01" not in ids(result)
    assert any("icsma-17-215-01.json" in p and "sha512 mismatch" in p for p in result.problems)
    assert ids(result) == GOOD


async def test_missing_folder_fails(tmp_path: Path, fetcher: Fetcher) -> None:
    with pytest.raises(SourceError, match="not a folder"):
        await poll_csaf(csaf_source(path=tmp_path / "nowhere"), fetcher, FeedState("cisa-csaf"))


def test_cursor_survives_garbage() -> None:
    assert csaf_feed._Cursor.load("not json").since is None
    assert csaf_feed._Cursor.load('["a list"]').pending == []
    cursor = csaf_feed._Cursor(since=datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=1))
    assert csaf_feed._Cursor.load(cursor.dump()).since == cursor.since


async def test_a_suddenly_empty_feed_fails_and_forgets_nothing(feed_server: FeedServer, fetcher: Fetcher) -> None:
    serve_documents(feed_server, IN_FEED)
    serve_feed(feed_server, feed_json())
    url = feed_server.url(FEED_PATH)
    first, _ = await poll_source(csaf_source(url), fetcher, FeedState("cisa-csaf"))
    assert first.ok and first.advisories

    emptied = feed_json()
    emptied["feed"]["entry"] = []
    serve_feed(feed_server, emptied, etag='"feed-empty"')
    second, _ = await poll_source(csaf_source(url), fetcher, after(FeedState("cisa-csaf"), first))
    assert not second.ok and "no documents at all" in (second.error or "")
