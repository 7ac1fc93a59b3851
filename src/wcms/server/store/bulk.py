"""Many rows in one statement: the write paths that fan out to a whole fleet.

SQLAlchemy's executemany runs one statement per row. On SQLite the driver's thread
gives up the GIL and waits to win it back for every one of them, and while the event
loop is busy that wait dominates: seconds for ten thousand rows. On PostgreSQL each row
is still a statement for the server to run. Here the whole batch goes as one statement
per table: SQLite gets it as one JSON array parameter and unpacks it with
``json_each``; PostgreSQL gets one array per column and unpacks them with ``unnest``.
Values are converted by each column's own type first, so what is stored is exactly
what SQLAlchemy would have stored.

Every row of a call has the same keys. The table and column names in the statements
are the schema's own, never input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

Rows = Sequence[Mapping[str, Any]]


class Encoded(str):
    """A value already in its column's stored form: JSON text for a JSON column."""

    __slots__ = ()


async def insert_rows(
    conn: AsyncConnection, table: Table, rows: Rows, *, returning: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """Insert ``rows``; scalar column defaults fill the columns they leave out.

    With ``returning``, those columns of the new rows come back, in no set order (an
    order would make SQLite insert row by row)."""
    if not rows:
        return []
    rows = _with_defaults(table, rows)
    names = list(rows[0])
    source, params = _source(conn, table, names, rows)
    back = f" RETURNING {', '.join(table.c[name].name for name in returning)}" if returning else ""
    result = await conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) {source}{back}",
        params,
    )
    return [tuple(row) for row in result] if returning else []


async def upsert_rows(conn: AsyncConnection, table: Table, key: str, rows: Rows) -> None:
    """Insert ``rows``, or where a row with the same ``key`` exists, update it."""
    if not rows:
        return
    names = list(rows[0])
    source, params = _source(conn, table, names, rows)
    # "WHERE true" tells SQLite's parser that ON CONFLICT is not a join's ON.
    changes = ", ".join(f"{name} = excluded.{name}" for name in names if name != key)
    await conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) {source} WHERE true "
        f"ON CONFLICT ({key}) DO UPDATE SET {changes}",
        params,
    )


async def update_rows(conn: AsyncConnection, table: Table, key: str, rows: Rows) -> None:
    """Set each row's other columns in the row of ``table`` with the same ``key``."""
    if not rows:
        return
    names = [key, *(name for name in rows[0] if name != key)]
    if conn.dialect.name == "sqlite":
        column = {name: f"json_extract(new.value, '$[{n}]')" for n, name in enumerate(names)}
        source = "json_each(?) AS new"
        params: tuple[Any, ...] = (_json_array(conn, table, names, rows),)
    else:
        column = {name: f"new.{name}" for name in names}
        source = f"{_unnest(conn, table, names)} AS new({', '.join(names)})"
        params = _arrays(conn, table, names, rows)
    sets = ", ".join(f"{name} = {column[name]}" for name in names[1:])
    await conn.exec_driver_sql(
        f"UPDATE {table.name} SET {sets} FROM {source} "  # noqa: S608
        f"WHERE {table.name}.{key} = {column[key]}",
        params,
    )


def _source(
    conn: AsyncConnection, table: Table, names: list[str], rows: Rows
) -> tuple[str, tuple[Any, ...]]:
    """A SELECT that yields ``rows`` as rows of ``names``, and its parameters."""
    if conn.dialect.name == "sqlite":
        picks = ", ".join(f"json_extract(value, '$[{n}]')" for n in range(len(names)))
        return f"SELECT {picks} FROM json_each(?)", (_json_array(conn, table, names, rows),)  # noqa: S608
    return f"SELECT * FROM {_unnest(conn, table, names)}", _arrays(conn, table, names, rows)  # noqa: S608


def _json_array(conn: AsyncConnection, table: Table, names: list[str], rows: Rows) -> str:
    converters = [_converter(conn, table, name) for name in names]
    return orjson.dumps(
        [
            [convert(row[name]) for name, convert in zip(names, converters, strict=True)]
            for row in rows
        ]
    ).decode()


def _unnest(conn: AsyncConnection, table: Table, names: list[str]) -> str:
    kinds = [table.c[name].type.compile(dialect=conn.dialect) for name in names]
    return f"unnest({', '.join(f'${n}::{kind}[]' for n, kind in enumerate(kinds, 1))})"


def _arrays(
    conn: AsyncConnection, table: Table, names: list[str], rows: Rows
) -> tuple[list[Any], ...]:
    return tuple(
        [convert(row[name]) for row in rows]
        for name, convert in ((name, _converter(conn, table, name)) for name in names)
    )


def _converter(conn: AsyncConnection, table: Table, name: str) -> Callable[[Any], Any]:
    # The dialect's own form of the type: the generic one would leave a datetime for
    # the driver, which on SQLite stores it in another text format than SQLAlchemy.
    process = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if process is None:
        return _same
    return lambda value: value if value is None or isinstance(value, Encoded) else process(value)


def _same(value: Any) -> Any:
    return value


def _with_defaults(table: Table, rows: Rows) -> Rows:
    """Rows with the scalar Python-side defaults of the columns they leave out."""
    missing = {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.columns
        if column.name not in rows[0] and column.default is not None and column.default.is_scalar
    }
    return [{**row, **missing} for row in rows] if missing else rows
