"""The SQLite state file: round trips, change detection, the outbox, and refusing files that are not ours."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.errors import StateError
from aggregator.models import Advisory, FeedState, Product, SourceKind
from aggregator.store import SCHEMA_VERSION, Store, advisory_from_dict, advisory_to_dict, retry_delay

WHEN = datetime(2019, 6, 27, tzinfo=UTC)


def sample(**changes: object) -> Advisory:
    base = Advisory(
        source="cisa-csaf",
        kind=SourceKind.CSAF,
        entry_id="ICSMA-19-178-01",
        advisory_id="ICSMA-19-178-01",
        title="Medtronic MiniMed 508 and Paradigm Series Insulin Pumps",
        url="https://www.cisa.gov/news-events/ics-medical-advisories/icsma-19-178-01",
        published=WHEN,
        updated=WHEN,
        identifiers=frozenset({"ICSMA-19-178-01", "CVE-2019-10964"}),
        cves=("CVE-2019-10964",),
        products=(Product("Medtronic", "MiniMed Paradigm 523/723 pumps", "<= 2.4A", "known_affected", ("MMT-523",)),),
        cvss_score=7.1,
        severity="HIGH",
        release_dates=(WHEN,),
        extra=(("tracking_version", "1"),),
    )
    values = {**{f: getattr(base, f) for f in base.__dataclass_fields__}, **changes}
    return Advisory(**values)  # type: ignore[arg-type]


def test_advisory_round_trip() -> None:
    adv = sample()
    assert advisory_from_dict(advisory_to_dict(adv)) == adv


def test_upsert_counts_only_real_changes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    with store.transaction():
        assert store.upsert_advisories([sample()], WHEN) == 1
        assert store.upsert_advisories([sample()], WHEN) == 0
        assert store.upsert_advisories([sample(cvss_score=7.5)], WHEN) == 1
    assert store.advisories()[0].cvss_score == 7.5


def test_feed_state_round_trip(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    state = FeedState(
        "x",
        etag='"abc"',
        last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
        last_poll=WHEN,
        outcome="ok",
        items=3,
        consecutive_failures=0,
        next_poll=WHEN + timedelta(hours=1),
    )
    with store.transaction():
        store.save_feed_state(state)
    assert store.feed_state("x") == state
    assert store.feed_state("never-polled") == FeedState("never-polled")


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert_advisories([sample()], WHEN)
        raise RuntimeError("crash mid-cycle")
    assert store.advisories() == []


def test_outbox_one_row_per_target_and_retry(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    with store.transaction():
        alert = store.add_alert("ICSMA-19-178-01", "pump", "new", "subj", "body", [("a", "mail"), ("b", "chat")], WHEN)
    due = store.due_deliveries(WHEN, ["a", "b"])
    assert [(d.alert_id, d.target) for d in due] == [(alert, "a"), (alert, "b")]
    with store.transaction():
        store.mark_delivered(alert, "a", WHEN)
        store.mark_failed(alert, "b", "refused", WHEN + retry_delay(1))
    assert store.due_deliveries(WHEN, ["a", "b"]) == []
    later = store.due_deliveries(WHEN + timedelta(minutes=2), ["a", "b"])
    assert [(d.target, d.attempts) for d in later] == [("b", 1)]
    # A target added later has no rows for old alerts.
    assert store.due_deliveries(WHEN + timedelta(days=1), ["c"]) == []


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n).total_seconds() for n in range(1, 15)]
    assert delays[:3] == [60, 120, 240]
    assert max(delays) == 6 * 3600


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StateError, match="not a usable SQLite state file"):
        Store.open(path)
    assert path.read_bytes() == b"garbage" * 1000, "never silently reset"


def test_someone_elses_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE recipes (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="not an aggregator state file"):
        Store.open(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    Store.open(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer"):
        Store.open(path)


def test_read_only_open_never_creates(tmp_path: Path) -> None:
    with pytest.raises(StateError):
        Store.open(tmp_path / "missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_migrates_from_every_earlier_version(tmp_path: Path, version: int) -> None:
    """A state file left by an older aggregator at schema `version` opens, migrates and keeps its data."""
    from aggregator.store import APPLICATION_ID, MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    if version:
        db.execute(f"PRAGMA user_version = {version}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("INSERT INTO feed_state (source, etag, items) VALUES ('cisa', '\"e1\"', 7)")
        db.execute(
            "INSERT INTO alerts (id, event_id, device, kind, subject, body, created) "
            "VALUES (1, 'ICSMA-19-178-01', 'pump', 'new', 's', 'b', '2019-06-27T00:00:00+00:00')"
        )
        db.execute(
            "INSERT INTO deliveries (alert_id, target, label, next_attempt) "
            "VALUES (1, 'a', 'mail', '2019-06-27T00:00:00+00:00')"
        )
    db.commit()
    db.close()
    store = Store.open(path)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    if version:
        state = store.feed_state("cisa")
        assert (state.etag, state.items, state.failure_notified) == ('"e1"', 7, None)
        assert [d.alert_id for d in store.due_deliveries(WHEN + timedelta(days=1), ["a"])] == [1]
    store.close()
