"""The storing transaction of a report batch, written in the database driver's own terms.

Every report passes through here, so these few statements skip SQLAlchemy's per-row work
(parameter dictionaries, bind processors, result objects): that cost more CPU than SQLite
takes to run them. The SQL is fixed text; the tables are still those of `db` and the values
are stored exactly as SQLAlchemy would store them (a test reads them back through it).

The transaction holds each host row it read until it commits, so two batches (two writer
threads, two worker processes, two replicas) cannot both update one host from the same state:

  * SQLite: `BEGIN IMMEDIATE` takes the database's single write lock before anything is read.
    Batch writers in other processes on the same file queue on an advisory lock first (see
    `_sqlite_turn`), so the next one starts the moment the lock is released.
  * PostgreSQL: the rows are read `FOR UPDATE`, in name order, so concurrent batches wait for
    each other instead of deadlocking.

Rows go in as one JSON document per statement on PostgreSQL (`json_to_recordset`: the
statement text stays the same whatever the batch size, so it is prepared once, and encoding a
batch as JSON costs the client a fifth of psycopg's per-value array dumping), and statement by
statement on SQLite (each a cached prepared statement, a few microseconds apiece), which also
tells which rows were new.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from sqlalchemy import String
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from mailagent.collector.db import (UTCDateTime, aware_utc, hosts, naive_utc, nonces,
                                    reports)

# The reports columns in the order the statements below name them.
REPORT_COLUMNS = tuple(c.name for c in reports.columns)
_HOST_FIELDS = ("name", "public_key", "latest", "conditions", "interval_seconds", "role",
                "drained_at")
HOST_UPDATE_FIELDS = ("name", "last_seen", "latest", "conditions", "interval_seconds", "role",
                      "drained_at")


class StorageUnavailable(Exception):
    """The database could not be reached, or stayed locked: the whole batch is answered 503."""


@dataclass
class HostRow:
    """The part of a host row ingest reads and moves forward."""

    public_key: str
    latest: str | None
    conditions: str | None
    interval_seconds: float | None
    role: str
    drained_at: datetime | None


def _sqlite_time(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DateTime stores (always with microseconds)."""
    value = naive_utc(value)
    return None if value is None else value.isoformat(" ", "microseconds")


def _host_row(row) -> HostRow:
    """A HostRow from the columns of _HOST_FIELDS (SQLite hands times back as text)."""
    drained_at = row[6]
    if isinstance(drained_at, str):
        drained_at = datetime.fromisoformat(drained_at)
    return HostRow(row[1], row[2], row[3], row[4], row[5], aware_utc(drained_at))


NonceRow = tuple[str, str, datetime]  # host, nonce, seen_at
_REPORT_TIMES = {c.name for c in reports.columns if isinstance(c.type, UTCDateTime)}
_HOST_TIMES = {c.name for c in hosts.columns if isinstance(c.type, UTCDateTime)}

_SQLITE_HOSTS = f"SELECT {', '.join(_HOST_FIELDS)} FROM {hosts.name} WHERE name IN"
_SQLITE_NONCE = (f"INSERT INTO {nonces.name} (host, nonce, seen_at) VALUES (?, ?, ?) "
                 "ON CONFLICT DO NOTHING")
_SQLITE_REPORT = (f"INSERT INTO {reports.name} ({', '.join(REPORT_COLUMNS)}) VALUES "
                  f"({', '.join('?' * len(REPORT_COLUMNS))}) ON CONFLICT DO NOTHING")
_SQLITE_ADVANCE = (f"UPDATE {hosts.name} SET "
                   + ", ".join(f"{f} = ?" for f in HOST_UPDATE_FIELDS[1:]) + " WHERE name = ?")
_SQLITE_FORGET = f"DELETE FROM {nonces.name} WHERE host = ? AND nonce = ?"


class SqliteBatch:
    """One write transaction on a SQLite connection (started with BEGIN IMMEDIATE)."""

    def __init__(self, cursor, commit):
        self._cur, self._commit = cursor, commit

    def open(self, names: list[str], nonce_rows: list[NonceRow]
             ) -> tuple[dict[str, HostRow], set[tuple[str, str]]]:
        """Read (and hold) the hosts' rows; claim the nonces: the (host, nonce) pairs new."""
        marks = ", ".join("?" * len(names))
        rows = self._cur.execute(f"{_SQLITE_HOSTS} ({marks})", names)
        known = {r[0]: _host_row(r) for r in rows}
        return known, self.claim_nonces(nonce_rows)

    def claim_nonces(self, rows: list[NonceRow]) -> set[tuple[str, str]]:
        return {(host, nonce) for host, nonce, seen in rows if self._cur.execute(
            _SQLITE_NONCE, (host, nonce, _sqlite_time(seen))).rowcount == 1}

    def finish(self, report_rows: list[dict], host_rows: list[dict],
               forget: list[tuple[str, str]]) -> set[str]:
        """Insert the reports, move the hosts forward, drop `forget` nonces, commit; return
        the ids of the reports that were new."""
        stored = set()
        for row in report_rows:
            values = [_sqlite_time(row[c]) if c in _REPORT_TIMES else row[c]
                      for c in REPORT_COLUMNS]
            if self._cur.execute(_SQLITE_REPORT, values).rowcount == 1:
                stored.add(row["id"])
        self._cur.executemany(_SQLITE_ADVANCE, [
            [_sqlite_time(r[f]) if f in _HOST_TIMES else r[f] for f in HOST_UPDATE_FIELDS[1:]]
            + [r["name"]] for r in host_rows])
        self._cur.executemany(_SQLITE_FORGET, forget)
        self._commit()
        return stored


class PostgresBatch:
    """One transaction on a psycopg connection in pipeline mode: statements are sent without
    waiting for each answer, so a batch costs two round trips (hosts locked and nonces claimed;
    reports, hosts and commit), three when a key changed under the cache."""

    def __init__(self, connection, commit):
        self._conn, self._commit = connection, commit

    def open(self, names: list[str], nonce_rows: list[NonceRow]
             ) -> tuple[dict[str, HostRow], set[tuple[str, str]]]:
        """Lock the hosts' rows (name order: concurrent batches wait, never deadlock) and claim
        the nonces: the (host, nonce) pairs new."""
        hosts_cur = self._conn.cursor()
        hosts_cur.execute(_PG_LOCK_HOSTS, {"names": names})
        nonces_cur = self._send_nonces(nonce_rows)
        known = {r[0]: _host_row(r) for r in hosts_cur.fetchall()}
        return known, {tuple(r) for r in nonces_cur.fetchall()} if nonces_cur else set()

    def claim_nonces(self, rows: list[NonceRow]) -> set[tuple[str, str]]:
        cur = self._send_nonces(rows)
        return {tuple(r) for r in cur.fetchall()} if cur else set()

    def _send_nonces(self, rows: list[NonceRow]):
        if not rows:
            return None
        cur = self._conn.cursor()
        cur.execute(_PG_NONCES, (_records(
            [{"host": h, "nonce": n, "seen_at": seen} for h, n, seen in rows]),))
        return cur

    def finish(self, report_rows: list[dict], host_rows: list[dict],
               forget: list[tuple[str, str]]) -> set[str]:
        """Insert the reports, move the hosts forward, drop `forget` nonces and commit, in one
        round trip; return the ids of the reports that were new."""
        reports_cur = self._conn.cursor()
        if report_rows:
            reports_cur.execute(_PG_REPORTS, (_records(report_rows),))
        if host_rows:
            self._conn.cursor().execute(_PG_HOSTS, (_records(host_rows),))
        if forget:
            self._conn.cursor().execute(_PG_FORGET, (_records(
                [{"host": h, "nonce": n} for h, n in forget]),))
        self._commit()
        return {r[0] for r in reports_cur.fetchall()} if report_rows else set()


def _records(rows: list[dict]) -> str:
    """Rows as one JSON array for json_to_recordset (times as naive UTC ISO text)."""
    out = []
    for row in rows:
        row = dict(row)
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = naive_utc(value).isoformat()
        out.append(row)
    return json.dumps(out, allow_nan=False)


def _recordset(table, names: tuple[str, ...]) -> str:
    """`json_to_recordset(%s::json) AS r(name type, ...)` for `names` of `table`."""
    fields = []
    for name in names:
        kind = table.c[name].type
        if isinstance(kind, UTCDateTime):
            sql_type = "timestamp"
        elif isinstance(kind, String):
            sql_type = "text"  # a cast to varchar(n) would cut silently; the write still refuses
        else:
            sql_type = kind.compile(dialect=postgresql.dialect())
        fields.append(f"{name} {sql_type}")
    return f"json_to_recordset(%s::json) AS r({', '.join(fields)})"


_PG_LOCK_HOSTS = (f"SELECT {', '.join(_HOST_FIELDS)} FROM {hosts.name} "
                  "WHERE name = ANY(%(names)s::text[]) ORDER BY name FOR UPDATE")
_PG_NONCES = (f"INSERT INTO {nonces.name} (host, nonce, seen_at) SELECT host, nonce, seen_at "
              f"FROM {_recordset(nonces, ('host', 'nonce', 'seen_at'))} ON CONFLICT DO NOTHING "
              "RETURNING host, nonce")
_PG_REPORTS = (f"INSERT INTO {reports.name} ({', '.join(REPORT_COLUMNS)}) SELECT "
               f"{', '.join(REPORT_COLUMNS)} FROM {_recordset(reports, REPORT_COLUMNS)} "
               "ON CONFLICT DO NOTHING RETURNING id")
_PG_HOSTS = (f"UPDATE {hosts.name} AS h SET "
             + ", ".join(f"{f} = r.{f}" for f in HOST_UPDATE_FIELDS[1:])
             + f" FROM {_recordset(hosts, HOST_UPDATE_FIELDS)} WHERE h.name = r.name")
_PG_FORGET = (f"DELETE FROM {nonces.name} AS n USING {_recordset(nonces, ('host', 'nonce'))} "
              "WHERE n.host = r.host AND n.nonce = r.nonce")


@contextmanager
def transaction(engine: Engine) -> Iterator[SqliteBatch | PostgresBatch]:
    """A batch transaction on a pooled connection, committed by the batch's `finish` and
    rolled back if the block raises first. Connection failures and lock timeouts become
    StorageUnavailable, and the connection is discarded (it may be dead: ingest's pool does
    not test connections on checkout, which would cost a round trip per batch)."""
    dialect = engine.dialect
    if dialect.name not in ("sqlite", "postgresql") or (
            dialect.name == "postgresql" and dialect.driver != "psycopg"):
        raise NotImplementedError(f"no batch store for {dialect.name}+{dialect.driver}")
    unavailable = dialect.loaded_dbapi.OperationalError
    try:
        raw = engine.raw_connection()
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy wraps the driver's error
        raise StorageUnavailable(str(getattr(exc, "orig", exc))) from exc
    try:
        if dialect.name == "sqlite":
            with _sqlite_turn(engine.url.database):
                cursor = raw.cursor()
                cursor.execute("BEGIN IMMEDIATE")
                yield SqliteBatch(cursor, raw.commit)
        else:
            with raw.driver_connection.pipeline():
                yield PostgresBatch(raw.driver_connection, raw.commit)
    except unavailable as exc:
        raw.invalidate()
        if dialect.name == "postgresql":
            engine.dispose()  # the pool's other connections went with the server: drop them too
        raise StorageUnavailable(str(exc)) from exc
    except BaseException:
        try:
            raw.rollback()
        except unavailable:
            raw.invalidate()
        raise
    finally:
        raw.close()


@contextmanager
def _sqlite_turn(database: str | None) -> Iterator[None]:
    """An exclusive flock on `<database>-ingest.lock` for one batch transaction.

    SQLite makes a writer that finds the database locked sleep and retry (1, 2, 5, 10 ... ms
    apart), which with several worker processes puts tens of milliseconds on the latency of
    many reports. Waiting on a kernel lock instead wakes the next batch writer as soon as the
    previous one commits. Other writers (alerts, retention, registration) are rare and still
    covered by the busy timeout."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    fd = os.open(f"{database}-ingest.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
