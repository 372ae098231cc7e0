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

Rows go in as one binary array per column on PostgreSQL (the statement text stays the same
whatever the batch size, so it is parsed and planned once), and statement by statement on
SQLite (each a cached prepared statement, a few microseconds apiece), which also tells which
rows were new.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterator

from sqlalchemy import String
from sqlalchemy.engine import Engine

from mailagent.collector.db import UTCDateTime, hosts, nonces, reports

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


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _sqlite_time(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DateTime stores (always with microseconds)."""
    value = _naive_utc(value)
    return None if value is None else value.isoformat(" ", "microseconds")


def _aware(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return None if value is None else value.replace(tzinfo=timezone.utc)


class SqliteBatch:
    """One write transaction on a SQLite connection (started with BEGIN IMMEDIATE)."""

    def __init__(self, cursor):
        self._cur = cursor

    def lock_hosts(self, names: list[str]) -> dict[str, HostRow]:
        marks = ", ".join("?" * len(names))
        rows = self._cur.execute(
            f"SELECT {', '.join(_HOST_FIELDS)} FROM {hosts.name} WHERE name IN ({marks})", names)
        return {r[0]: HostRow(r[1], r[2], r[3], r[4], r[5], _aware(r[6])) for r in rows}

    def insert_nonces(self, rows: list[tuple[str, str, datetime]]) -> set[tuple[str, str]]:
        sql = (f"INSERT INTO {nonces.name} (host, nonce, seen_at) VALUES (?, ?, ?) "
               "ON CONFLICT DO NOTHING")
        return {(host, nonce) for host, nonce, seen in rows
                if self._cur.execute(sql, (host, nonce, _sqlite_time(seen))).rowcount == 1}

    def insert_reports(self, rows: list[dict]) -> set[str]:
        sql = (f"INSERT INTO {reports.name} ({', '.join(REPORT_COLUMNS)}) VALUES "
               f"({', '.join('?' * len(REPORT_COLUMNS))}) ON CONFLICT DO NOTHING")
        stored = set()
        for row in rows:
            values = [row[c] for c in REPORT_COLUMNS]
            values[2], values[3] = _sqlite_time(values[2]), _sqlite_time(values[3])
            if self._cur.execute(sql, values).rowcount == 1:
                stored.add(row["id"])
        return stored

    def update_hosts(self, rows: list[dict]) -> None:
        sets = ", ".join(f"{f} = ?" for f in HOST_UPDATE_FIELDS[1:])
        self._cur.executemany(
            f"UPDATE {hosts.name} SET {sets} WHERE name = ?",
            [(_sqlite_time(r["last_seen"]), r["latest"], r["conditions"], r["interval_seconds"],
              r["role"], _sqlite_time(r["drained_at"]), r["name"]) for r in rows])


class PostgresBatch:
    """One transaction on a psycopg connection; host rows locked FOR UPDATE."""

    def __init__(self, cursor):
        self._cur = cursor

    def lock_hosts(self, names: list[str]) -> dict[str, HostRow]:
        self._cur.execute(f"SELECT {', '.join(_HOST_FIELDS)} FROM {hosts.name} "
                          "WHERE name = ANY(%(names)b::text[]) ORDER BY name FOR UPDATE",
                          {"names": names})
        return {r[0]: HostRow(r[1], r[2], r[3], r[4], r[5], _aware(r[6]))
                for r in self._cur.fetchall()}

    def insert_nonces(self, rows: list[tuple[str, str, datetime]]) -> set[tuple[str, str]]:
        self._cur.execute(
            f"INSERT INTO {nonces.name} (host, nonce, seen_at) SELECT * FROM unnest("
            "%(h)b::text[], %(n)b::text[], %(s)b::timestamp[]) ON CONFLICT DO NOTHING "
            "RETURNING host, nonce",
            {"h": [r[0] for r in rows], "n": [r[1] for r in rows],
             "s": [_naive_utc(r[2]) for r in rows]})
        return {tuple(r) for r in self._cur.fetchall()}

    def insert_reports(self, rows: list[dict]) -> set[str]:
        arrays = {f"c{n}": [row[name] for row in rows] for n, name in enumerate(REPORT_COLUMNS)}
        for name in ("generated_at", "received_at"):
            key = f"c{REPORT_COLUMNS.index(name)}"
            arrays[key] = [_naive_utc(v) for v in arrays[key]]
        self._cur.execute(_postgres_report_insert(), arrays)
        return {r[0] for r in self._cur.fetchall()}

    def update_hosts(self, rows: list[dict]) -> None:
        if not rows:
            return
        self._cur.execute(
            f"UPDATE {hosts.name} AS h SET last_seen = u.last_seen, latest = u.latest, "
            "conditions = u.conditions, interval_seconds = u.interval_seconds, role = u.role, "
            "drained_at = u.drained_at FROM unnest(%(name)b::text[], %(last_seen)b::timestamp[], "
            "%(latest)b::text[], %(conditions)b::text[], %(interval_seconds)b::float8[], "
            "%(role)b::text[], %(drained_at)b::timestamp[]) AS u(name, last_seen, latest, "
            "conditions, interval_seconds, role, drained_at) WHERE h.name = u.name",
            {f: [_naive_utc(r[f]) if f in ("last_seen", "drained_at") else r[f] for r in rows]
             for f in HOST_UPDATE_FIELDS})


@lru_cache(maxsize=None)
def _postgres_report_insert() -> str:
    from sqlalchemy.dialects import postgresql
    casts = []
    for n, column in enumerate(reports.columns):
        if isinstance(column.type, UTCDateTime):
            kind = "timestamp"
        elif isinstance(column.type, String):
            kind = "text"  # a cast to varchar(n) would cut silently; the insert still refuses
        else:
            kind = column.type.compile(dialect=postgresql.dialect())
        casts.append(f"%(c{n})b::{kind}[]")  # psycopg's placeholder for a binary parameter
    return (f"INSERT INTO {reports.name} ({', '.join(REPORT_COLUMNS)}) SELECT * FROM unnest("
            f"{', '.join(casts)}) ON CONFLICT DO NOTHING RETURNING id")


@contextmanager
def transaction(engine: Engine) -> Iterator[SqliteBatch | PostgresBatch]:
    """A batch transaction on a pooled connection: committed when the block ends, rolled back
    if it raises. Connection failures and lock timeouts become StorageUnavailable."""
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
        cursor = raw.cursor()
        if dialect.name == "sqlite":
            with _sqlite_turn(engine.url.database):
                cursor.execute("BEGIN IMMEDIATE")
                yield SqliteBatch(cursor)
                raw.commit()
        else:
            yield PostgresBatch(cursor)
            raw.commit()
    except unavailable as exc:
        raw.rollback()
        raise StorageUnavailable(str(exc)) from exc
    except BaseException:
        raw.rollback()
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
