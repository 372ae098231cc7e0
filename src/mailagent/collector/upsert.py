"""Insert-if-absent for SQLite and PostgreSQL, telling which rows were new.

`INSERT ... ON CONFLICT DO NOTHING RETURNING key` is atomic in both databases, so two
collector replicas racing on the same nonce or report id cannot both win.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def insert_ignore(conn: Connection, table: Table, rows: list[dict],
                  key: tuple[str, ...]) -> set[tuple]:
    """Insert `rows`, skipping those whose `key` already exists; return the keys inserted."""
    if not rows:
        return set()
    insert = _INSERTS[conn.dialect.name]
    stmt = (insert(table).on_conflict_do_nothing(index_elements=list(key))
            .returning(*(table.c[k] for k in key)))
    result = conn.execute(stmt, rows)
    return {tuple(row) for row in result.all()}
