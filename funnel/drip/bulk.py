"""A batch's writes as sets. On PostgreSQL each kind of change is one statement
over all the batch's rows (the rows as arrays, ``unnest``): its kept tallies are
statement triggers (funnel.reporting), which an executemany ran once per row,
most of what a batch cost the server. On SQLite, whose triggers run per row
anyway and which has no round trips, it is an executemany (``rows.executemany``).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from funnel.drip.rows import executemany, updates_for

# The column an UPDATE of ``updates_for``'s table names looks its rows up by.
_KEYS = {"delivery": "public_id"}


def _array(table: Table, column: str, param: str, dialect: Any) -> str:
    """The parameter as an array of the column's type (psycopg sends lists untyped
    when they hold only NULLs)."""
    return f"%({param})s::{table.c[column].type.compile(dialect=dialect)}[]"


@functools.lru_cache(maxsize=64)
def _pg_insert(table: Table, keys: tuple[str, ...], dialect: Any) -> str:
    q = dialect.identifier_preparer.quote
    columns = ", ".join(q(k) for k in keys)
    arrays = ", ".join(_array(table, k, k, dialect) for k in keys)
    return f"INSERT INTO {q(table.name)} ({columns}) SELECT * FROM unnest({arrays})"


@functools.lru_cache(maxsize=64)
def _pg_update(table: Table, key: str, columns: tuple[str, ...], dialect: Any) -> str:
    q = dialect.identifier_preparer.quote
    arrays = ", ".join([_array(table, key, "_key", dialect),
                        *(_array(table, c, c, dialect) for c in columns)])
    sets = ", ".join(f"{q(c)} = v.{q(c)}" for c in columns)
    names = ", ".join(["_key", *(q(c) for c in columns)])
    return (f"UPDATE {q(table.name)} AS t SET {sets} FROM unnest({arrays}) AS v({names})"
            f" WHERE t.{q(key)} = v._key")


def _columns(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list[Any]]:
    return {k: [r[k] for r in rows] for k in keys}


def insert_many(s: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` the rows (every row has the same keys; the columns' scalar
    defaults fill the rest, as for one row)."""
    if not rows:
        return
    conn = s.connection()
    if conn.dialect.name != "postgresql" or len(rows) == 1:
        executemany(s, insert(table), rows)
        return
    defaults = {c.name: getattr(c.default, "arg", None) for c in table.columns
                if c.name not in rows[0] and c.default is not None and c.default.is_scalar}
    if defaults:
        rows = [{**defaults, **r} for r in rows]
    keys = tuple(rows[0])
    conn.exec_driver_sql(_pg_insert(table, keys, conn.dialect), _columns(rows, keys))


def update_many(s: Session, table: str, fields: tuple[str, ...],
                rows: list[tuple[Any, tuple, tuple]]) -> None:
    """Write what changed in ``rows`` ((key, values before, values now) in the order
    of ``fields``; see ``rows.updates_for``): one statement per set of changed
    columns, only those columns (a concurrent writer's value in another stays)."""
    conn = s.connection()
    pg = conn.dialect.name == "postgresql"
    for stmt, params in updates_for(table, fields, rows).items():
        if not pg or len(params) == 1:
            executemany(s, stmt, params)
            continue
        target = stmt.table
        assert isinstance(target, Table)
        keys = tuple(params[0])  # "_key" and the columns, the same in every row
        sql = _pg_update(target, _KEYS.get(table, "id"), tuple(k for k in keys if k != "_key"),
                         conn.dialect)
        conn.exec_driver_sql(sql, _columns(params, keys))
