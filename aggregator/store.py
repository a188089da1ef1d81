"""SQLite state: source fetch state, advisories, per-device match state and the alert outbox.

All SQL lives here. Schema changes go through MIGRATIONS (PRAGMA user_version).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator.errors import StateError
from aggregator.models import Advisory, FeedState, Product, SourceKind

APPLICATION_ID = 0x41474752  # "AGGR": marks the file as ours

MIGRATIONS: tuple[str, ...] = (
    # 1: the spine
    """
    CREATE TABLE feed_state (
        source TEXT PRIMARY KEY,
        etag TEXT, last_modified TEXT,
        last_poll TEXT, last_success TEXT,
        outcome TEXT, error TEXT,
        items INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_poll TEXT, cursor TEXT
    );
    CREATE TABLE advisories (
        source TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        advisory_id TEXT,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        url TEXT,
        published TEXT,
        updated TEXT,
        content_hash TEXT NOT NULL,
        data TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (source, entry_id)
    );
    CREATE INDEX advisories_published ON advisories (published);
    CREATE TABLE matches (
        event_id TEXT NOT NULL,
        device TEXT NOT NULL,
        match_hash TEXT NOT NULL,
        summary TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_changed TEXT NOT NULL,
        PRIMARY KEY (event_id, device)
    );
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        device TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        target TEXT NOT NULL,
        label TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt TEXT NOT NULL,
        delivered_at TEXT,
        PRIMARY KEY (alert_id, target)
    );
    CREATE INDEX deliveries_due ON deliveries (status, next_attempt);
    """,
    # 2: "source is failing" notices
    """
    ALTER TABLE feed_state ADD COLUMN failure_notified TEXT;
    """,
    # 3: CVSS looked up at NVD for CVEs a source names without a score
    """
    CREATE TABLE cve_scores (
        cve TEXT PRIMARY KEY,
        score REAL,
        severity TEXT,
        vector TEXT,
        fetched TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """One (alert, target) row the notifier still owes."""

    alert_id: int
    target: str
    label: str
    attempts: int
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class StoredMatch:
    """What was last alerted for one (event, device)."""

    event_id: str
    device: str
    match_hash: str
    summary: dict[str, Any]


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- Advisory <-> JSON ------------------------------------------------------------------------


def advisory_to_dict(advisory: Advisory) -> dict[str, Any]:
    """A JSON-ready dict of every Advisory field."""
    data = asdict(advisory)
    data["kind"] = advisory.kind.value
    data["identifiers"] = sorted(advisory.identifiers)
    for key in ("published", "updated"):
        data[key] = _iso(data[key])
    data["release_dates"] = [_iso(d) for d in advisory.release_dates]
    return data


def advisory_from_dict(data: dict[str, Any]) -> Advisory:
    """The inverse of advisory_to_dict."""
    known = {f.name for f in fields(Advisory)}
    values = {k: v for k, v in data.items() if k in known}
    values["kind"] = SourceKind(values["kind"])
    values["published"] = _dt(values.get("published"))
    values["updated"] = _dt(values.get("updated"))
    values["release_dates"] = tuple(d for d in (_dt(x) for x in values.get("release_dates", ())) if d)
    values["identifiers"] = frozenset(values.get("identifiers", ()))
    values["products"] = tuple(
        Product(**{**p, "model_numbers": tuple(p.get("model_numbers", ()))}) for p in values.get("products", ())
    )
    values["extra"] = tuple(tuple(pair) for pair in values.get("extra", ()))
    for key in ("cves", "cwes", "remediations"):
        values[key] = tuple(values.get(key, ()))
    return Advisory(**values)


def content_hash(advisory: Advisory) -> str:
    """Hash of the normalised content: unchanged content means nothing new, whatever the timestamps say."""
    data = advisory_to_dict(advisory)
    data.pop("source", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# -- the store --------------------------------------------------------------------------------


class Store:
    """The state file. Open with Store.open(path); read-only opens never create or migrate."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        if not create and not path.exists():
            raise StateError(f"{path}: state file does not exist")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{path}: cannot open the state file: {exc}") from exc
        conn.row_factory = sqlite3.Row
        store = cls(conn, path)
        try:
            store._prepare()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"{path}: not a usable SQLite state file ({exc}); move it aside to start afresh") from exc
        except StateError:
            conn.close()
            raise
        return store

    def _prepare(self) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise StateError(f"{self.path}: this SQLite file is not an aggregator state file")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: state file has schema {version}, newer than this aggregator knows "
                f"({SCHEMA_VERSION}); upgrade aggregator"
            )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        for number in range(version, SCHEMA_VERSION):
            with self.transaction():
                for statement in _split_sql(MIGRATIONS[number]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything inside lands, or nothing does."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- feed state ----------------------------------------------------------------------------

    def feed_state(self, source: str) -> FeedState:
        row = self.conn.execute("SELECT * FROM feed_state WHERE source = ?", (source,)).fetchone()
        if row is None:
            return FeedState(source)
        return FeedState(
            source=row["source"],
            etag=row["etag"],
            last_modified=row["last_modified"],
            last_poll=_dt(row["last_poll"]),
            last_success=_dt(row["last_success"]),
            outcome=row["outcome"],
            error=row["error"],
            items=row["items"],
            consecutive_failures=row["consecutive_failures"],
            next_poll=_dt(row["next_poll"]),
            cursor=row["cursor"],
            failure_notified=_dt(row["failure_notified"]),
        )

    def save_feed_state(self, state: FeedState) -> None:
        self.conn.execute(
            """INSERT INTO feed_state (source, etag, last_modified, last_poll, last_success, outcome, error,
                   items, consecutive_failures, next_poll, cursor, failure_notified)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (source) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
                   last_poll = excluded.last_poll, last_success = excluded.last_success,
                   outcome = excluded.outcome, error = excluded.error, items = excluded.items,
                   consecutive_failures = excluded.consecutive_failures, next_poll = excluded.next_poll,
                   cursor = excluded.cursor, failure_notified = excluded.failure_notified""",
            (
                state.source,
                state.etag,
                state.last_modified,
                _iso(state.last_poll),
                _iso(state.last_success),
                state.outcome,
                state.error,
                state.items,
                state.consecutive_failures,
                _iso(state.next_poll),
                state.cursor,
                _iso(state.failure_notified),
            ),
        )

    # -- advisories ----------------------------------------------------------------------------

    def upsert_advisories(self, advisories: Iterable[Advisory], seen_at: datetime) -> int:
        """Store what a source said; returns how many were new or changed in content."""
        changed = 0
        for adv in advisories:
            digest = content_hash(adv)
            row = self.conn.execute(
                "SELECT content_hash FROM advisories WHERE source = ? AND entry_id = ?", (adv.source, adv.entry_id)
            ).fetchone()
            if row is not None and row[0] == digest:
                self.conn.execute(
                    "UPDATE advisories SET last_seen = ? WHERE source = ? AND entry_id = ?",
                    (_iso(seen_at), adv.source, adv.entry_id),
                )
                continue
            changed += 1
            self.conn.execute(
                """INSERT INTO advisories (source, entry_id, advisory_id, kind, title, url, published, updated,
                       content_hash, data, first_seen, last_seen)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (source, entry_id) DO UPDATE SET advisory_id = excluded.advisory_id,
                       kind = excluded.kind, title = excluded.title, url = excluded.url,
                       published = excluded.published, updated = excluded.updated,
                       content_hash = excluded.content_hash, data = excluded.data, last_seen = excluded.last_seen""",
                (
                    adv.source,
                    adv.entry_id,
                    adv.advisory_id,
                    adv.kind.value,
                    adv.title,
                    adv.url,
                    _iso(adv.published),
                    _iso(adv.updated),
                    digest,
                    json.dumps(advisory_to_dict(adv), ensure_ascii=False),
                    _iso(seen_at),
                    _iso(seen_at),
                ),
            )
        return changed

    def advisories(self, *, source: str | None = None, since: datetime | None = None) -> list[Advisory]:
        """Stored advisories, newest first."""
        query = "SELECT data FROM advisories WHERE 1 = 1"
        params: list[Any] = []
        if source is not None:
            query += " AND source = ?"
            params.append(source)
        if since is not None:
            query += " AND published >= ?"
            params.append(_iso(since))
        query += " ORDER BY coalesce(published, first_seen) DESC, source, entry_id"
        return [advisory_from_dict(json.loads(r[0])) for r in self.conn.execute(query, params)]

    def advisory_count(self, source: str) -> int:
        return int(self.conn.execute("SELECT count(*) FROM advisories WHERE source = ?", (source,)).fetchone()[0])

    # -- NVD scores --------------------------------------------------------------------------

    def cve_scores(self) -> dict[str, tuple[float | None, str | None]]:
        """Every CVE looked up so far: (score, severity); score None when NVD had none."""
        return {r[0]: (r[1], r[2]) for r in self.conn.execute("SELECT cve, score, severity FROM cve_scores")}

    def save_cve_score(
        self, cve: str, score: float | None, severity: str | None, vector: str | None, at: datetime
    ) -> None:
        self.conn.execute(
            """INSERT INTO cve_scores (cve, score, severity, vector, fetched) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (cve) DO UPDATE SET score = excluded.score, severity = excluded.severity,
                   vector = excluded.vector, fetched = excluded.fetched""",
            (cve, score, severity, vector, _iso(at)),
        )

    # -- matches and alerts --------------------------------------------------------------------

    def stored_matches(self) -> dict[tuple[str, str], StoredMatch]:
        return {
            (r["event_id"], r["device"]): StoredMatch(
                r["event_id"], r["device"], r["match_hash"], json.loads(r["summary"])
            )
            for r in self.conn.execute("SELECT * FROM matches")
        }

    def save_match(self, event_id: str, device: str, match_hash: str, summary: dict[str, Any], at: datetime) -> None:
        self.conn.execute(
            """INSERT INTO matches (event_id, device, match_hash, summary, first_seen, last_changed)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (event_id, device) DO UPDATE SET match_hash = excluded.match_hash,
                   summary = excluded.summary, last_changed = excluded.last_changed""",
            (event_id, device, match_hash, json.dumps(summary, sort_keys=True), _iso(at), _iso(at)),
        )

    def add_alert(
        self,
        event_id: str,
        device: str,
        kind: str,
        subject: str,
        body: str,
        targets: Sequence[tuple[str, str]],
        at: datetime,
    ) -> int:
        """Queue an alert for every (target key, masked label); returns the alert id."""
        cur = self.conn.execute(
            "INSERT INTO alerts (event_id, device, kind, subject, body, created) VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, device, kind, subject, body, _iso(at)),
        )
        alert_id = int(cur.lastrowid or 0)
        self.conn.executemany(
            "INSERT INTO deliveries (alert_id, target, label, next_attempt) VALUES (?, ?, ?, ?)",
            [(alert_id, key, label, _iso(at)) for key, label in targets],
        )
        return alert_id

    def due_deliveries(self, at: datetime, targets: Iterable[str]) -> list[PendingDelivery]:
        keys = list(targets)
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = self.conn.execute(
            f"""SELECT d.alert_id, d.target, d.label, d.attempts, a.subject, a.body
                FROM deliveries d JOIN alerts a ON a.id = d.alert_id
                WHERE d.status = 'pending' AND d.next_attempt <= ? AND d.target IN ({marks})
                ORDER BY d.alert_id, d.target""",
            [_iso(at), *keys],
        )
        return [PendingDelivery(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def mark_delivered(self, alert_id: int, target: str, at: datetime) -> None:
        self.conn.execute(
            """UPDATE deliveries SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,
                   last_error = NULL WHERE alert_id = ? AND target = ?""",
            (_iso(at), alert_id, target),
        )

    def mark_failed(self, alert_id: int, target: str, error: str, retry_at: datetime) -> None:
        self.conn.execute(
            """UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt = ?
               WHERE alert_id = ? AND target = ?""",
            (error, _iso(retry_at), alert_id, target),
        )

    def next_delivery_time(self, targets: Iterable[str]) -> datetime | None:
        """When the earliest pending delivery to one of `targets` is due."""
        keys = list(targets)
        if not keys:
            return None
        marks = ",".join("?" * len(keys))
        row = self.conn.execute(
            f"SELECT min(next_attempt) FROM deliveries WHERE status = 'pending' AND target IN ({marks})", keys
        ).fetchone()
        return _dt(row[0]) if row and row[0] else None

    def stuck_deliveries(self, min_attempts: int) -> list[tuple[int, str, int, str | None]]:
        """Pending deliveries that failed at least `min_attempts` times: (alert id, label, attempts, error)."""
        rows = self.conn.execute(
            "SELECT alert_id, label, attempts, last_error FROM deliveries WHERE status = 'pending' AND attempts >= ?",
            (min_attempts,),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def alert_report(self) -> list[dict[str, Any]]:
        """Every alert with its delivery state per target (masked), oldest first."""
        rows = self.conn.execute(
            """SELECT a.id, a.event_id, a.device, a.kind, a.subject, a.created, d.label, d.status, d.attempts,
                      d.last_error, d.next_attempt, d.delivered_at
               FROM alerts a JOIN deliveries d ON d.alert_id = a.id ORDER BY a.id, d.label"""
        )
        return [dict(r) for r in rows]


def retry_delay(attempts: int) -> timedelta:
    """Back-off after `attempts` failed deliveries: 1 min, 2, 4, ... capped at 6 h."""
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 6 * 3600))


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
