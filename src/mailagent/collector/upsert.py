"""Insert-if-absent for SQLite and PostgreSQL, telling which rows were new.

`INSERT ... ON CONFLICT DO NOTHING RETURNING key` is atomic in both databases, so two
collector replicas racing on the same nonce or report id cannot both win.

With psycopg the rows travel as one binary array per column, unnested by the server: the
statement text stays the same whatever the number of rows, so psycopg parses it once and the
server prepares it once, and binary arrays need no escaping. Measured on 64-row batches of
reports: about 35 us of client CPU per row, against 150 us for SQLAlchemy's multi-row VALUES
(new text for every batch size, its thousands of placeholders re-parsed each time).
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def insert_ignore(conn: Connection, table: Table, rows: list[dict],
                  key: tuple[str, ...]) -> set[tuple]:
    """Insert `rows`, skipping those whose `key` already exists; return the keys inserted."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        return _insert_unnested(conn, table, rows, key)
    result = conn.execute(_insert_statement(conn.dialect.name, table, key), rows)
    return {tuple(row) for row in result.all()}


@lru_cache(maxsize=None)
def _insert_statement(dialect: str, table: Table, key: tuple[str, ...]):
    """Built once per table: composing it and its cache key costs more than running it."""
    return (_INSERTS[dialect](table).on_conflict_do_nothing(index_elements=list(key))
            .returning(*(table.c[k] for k in key)))


def _insert_unnested(conn: Connection, table: Table, rows: list[dict],
                     key: tuple[str, ...]) -> set[tuple]:
    names = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    arrays, casts = {}, []
    for n, name in enumerate(names):
        column = table.c[name]
        # Each value as the column's type would bind it (aware times become naive UTC).
        bind = column.type.bind_processor(conn.dialect)
        values = [row[name] for row in rows]
        arrays[f"c{n}"] = [bind(v) for v in values] if bind else values
        # Strings as text[]: a cast to varchar(n) would silently cut; the insert itself
        # still refuses an over-long value.
        kind = "TEXT" if isinstance(column.type, String) else \
            column.type.compile(dialect=conn.dialect)
        casts.append(f"%(c{n})b::{kind}[]")  # psycopg's placeholder for a binary parameter
    columns, keys = ", ".join(map(quote, names)), ", ".join(map(quote, key))
    sql = (f"INSERT INTO {quote(table.name)} ({columns}) SELECT * FROM unnest({', '.join(casts)}) "
           f"ON CONFLICT ({keys}) DO NOTHING RETURNING {keys}")
    return {tuple(row) for row in conn.exec_driver_sql(sql, arrays)}
