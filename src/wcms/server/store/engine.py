"""Database engine set-up for SQLite (default) and PostgreSQL, and the one door to it.

Services reach the database only through :class:`Database`: its transactions turn a
driver's failure (the server went away, the disk is full, a lock timed out) into
:class:`~wcms.server.errors.StorageError` at this boundary, so no layer above the store
sees a driver exception. An ``IntegrityError`` passes through unchanged: it is a fact
about the data (a name already taken), which the service that caused it translates.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wcms.server.errors import StorageError

log = logging.getLogger("wcms.store")


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
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """The engine behind every service, with driver errors translated on the way out."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with _translated():
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads."""
        with _translated():
            async with self.engine.connect() as conn:
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


@contextmanager
def _translated() -> Iterator[None]:
    """Driver errors out as StorageError; an IntegrityError as it is."""
    try:
        yield
    except IntegrityError:
        raise
    except (OperationalError, InterfaceError, InternalError) as exc:
        log.error("database error: %s", exc.orig)
        raise StorageError("the database failed; nothing was changed") from exc
    except DBAPIError as exc:
        # A value the database refuses (out of range, bad encoding): the same write
        # would fail again, so it is not one to retry.
        log.error("database refused a write: %s", exc.orig)
        raise StorageError(
            "the database refused a value; nothing was changed", retryable=False
        ) from exc
