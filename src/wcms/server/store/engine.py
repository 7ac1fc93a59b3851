"""Database engine set-up for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wcms.server.errors import StorageError

# How long a write waits for its turn on SQLite, as its busy timeout does.
SQLITE_WRITE_WAIT_S = 10.0

_write_turns: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL mode and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=8, max_overflow=8)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while the single writer commits; NORMAL sync is
    # crash-safe in WAL mode and much faster than FULL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_WRITE_WAIT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction.

    SQLite takes one writer at a time. Its busy handler makes the others sleep and retry,
    which under a storm of writers (a room enrolling at once) is unfair: some wait past
    the timeout and fail. Here the writers of this process queue for their turn instead,
    first come first served; PostgreSQL needs no turn."""
    if not is_sqlite(engine):
        async with engine.begin() as conn:
            yield conn
        return
    turn = _write_turns.setdefault(engine.sync_engine, asyncio.Lock())
    try:
        async with asyncio.timeout(SQLITE_WRITE_WAIT_S):
            await turn.acquire()
    except TimeoutError:
        raise StorageError(
            f"the database is busy: no turn to write within {SQLITE_WRITE_WAIT_S:g} s"
        ) from None
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        turn.release()
