"""Database engine set-up for SQLite (default) and PostgreSQL, and the one door to it.

Services reach the database only through :class:`Database`: its transactions turn a
driver's failure (the server went away, the disk is full, a lock timed out) into
:class:`~wcms.server.errors.StorageError` at this boundary, so no layer above the store
sees a driver exception. An ``IntegrityError`` passes through unchanged: it is a fact
about the data (a name already taken), which the service that caused it translates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wcms.server.errors import StorageError

log = logging.getLogger("wcms.store")

# A failed write counts for readiness this long; after that a probe write decides.
PROBE_AFTER_S = 5.0


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
        # Why the last write failed while the database was away (full disk, down),
        # and when (monotonic), until a write succeeds again: what readiness reports.
        self.write_failure: str | None = None
        self._failed_at = 0.0
        # Whether the database is away: said once when it goes and once when it is back.
        self._away = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        try:
            with self._translated():
                async with self.engine.begin() as conn:
                    yield conn
        except StorageError as exc:
            if exc.retryable:
                self.write_failure = str(exc.__cause__ or exc)
                self._failed_at = time.monotonic()
            raise
        self.write_failure = None
        self._answers()

    async def writable(self) -> bool:
        """Whether writes go through: the last write tells, and once it is a while old
        (an idle server), one real write of a row every WCMS database has."""
        if self.write_failure is None:
            return True
        if time.monotonic() - self._failed_at < PROBE_AFTER_S:
            return False
        try:
            async with self.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
        except StorageError:
            return False
        return True

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads."""
        with self._translated():
            async with self.engine.connect() as conn:
                yield conn
        self._answers()

    async def dispose(self) -> None:
        await self.engine.dispose()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors out as StorageError; an IntegrityError as it is."""
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as exc:
            if not _retryable(exc):
                log.error("database refused a write: %s", exc.orig)
                raise StorageError(
                    "the database refused a value; nothing was changed", retryable=False
                ) from exc
            if not self._away:
                log.error("database error: %s; retrying as work comes", exc.orig)
            else:
                log.debug("database error: %s", exc.orig)
            self._away = True
            raise StorageError("the database failed; nothing was changed") from exc

    def _answers(self) -> None:
        if self._away:
            self._away = False
            log.info("the database answers again")


# SQLSTATE classes of a database that is away, full or busy: connection exception,
# insufficient resources (disk full, too many connections), object not in
# prerequisite state (not accepting connections), operator intervention (shutting
# down), system error, transaction rollback (deadlock, serialization).
_AWAY_SQLSTATES = {"08", "53", "55", "57", "58", "40"}


def _retryable(exc: DBAPIError) -> bool:
    """Whether the same statement may work later (the database is away, full, locked),
    as opposed to a value or statement it refuses (out of range, bad encoding), which
    would fail again. Drivers do not all raise a precise class (asyncpg's adapter
    raises the generic one for both), so the SQLSTATE and the cause decide then."""
    if isinstance(exc, OperationalError | InterfaceError | InternalError):
        return True
    if isinstance(exc, DataError | ProgrammingError | NotSupportedError):
        return False
    cause = exc.orig.__cause__ if exc.orig is not None else None
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)[:2] in _AWAY_SQLSTATES
    return isinstance(cause, OSError | TimeoutError)
