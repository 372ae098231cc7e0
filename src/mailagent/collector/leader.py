"""Which process of several runs the timers (alert evaluation, retention).

PostgreSQL: a transaction-level advisory lock per pass (any replica on any machine may win a
pass; the others skip it). SQLite: an exclusive `flock` on a file beside the database, taken
once and held for the life of the process, so of the workers sharing a database file exactly
one evaluates alerts.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url


class SqliteLeader:
    """Holds (or tries to take) the database file's leader lock."""

    def __init__(self, engine: Engine):
        database = make_url(str(engine.url)).database if engine.dialect.name == "sqlite" else None
        self._path = f"{database}.leader" if database and database != ":memory:" else None
        self._fd: int | None = None

    def is_leader(self) -> bool:
        """True if this process holds the lock (taking it now if it is free)."""
        if self._path is None or self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def pg_pass_lock(conn: Connection, lock_id: int) -> bool:
    """Take a transaction-level advisory lock if free (PostgreSQL); True elsewhere."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": lock_id}).scalar())


@contextmanager
def pg_session_lock(engine: Engine, lock_id: int):
    """Yield True while holding a session-level advisory lock (PostgreSQL), for work spread
    over several transactions; yields False if another process holds it. True elsewhere."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": lock_id}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                conn.commit()
