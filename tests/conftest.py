"""Shared fixtures: a database per backend (SQLite file, throwaway PostgreSQL database)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_HOST = os.environ.get("WCMS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("WCMS_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("WCMS_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("WCMS_TEST_PG_DB", "test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB, timeout=5
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def refuse_connections(name: str) -> None:
    """Take PostgreSQL database ``name`` away for real: new connections refused, the
    open ones ended."""
    await _pg(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await _pg(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


async def allow_connections(name: str) -> None:
    await _pg(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def take_away(name: str) -> None:
    asyncio.run(refuse_connections(name))


def bring_back(name: str) -> None:
    asyncio.run(allow_connections(name))


def _postgres_available() -> str | None:
    try:
        asyncio.run(_pg("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_ready() -> None:
    problem = _postgres_available()
    if problem is None:
        return
    message = (
        f"PostgreSQL at {PG_HOST}:{PG_PORT} (database {PG_ADMIN_DB}) is not reachable: {problem}"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def make_pg_database() -> tuple[str, str]:
    name = f"wcms_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    return name, f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    request.getfixturevalue("postgres_ready")
    name, url = make_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the default SQLite file in the data dir, else a throwaway PostgreSQL URL."""
    yield from _database(request)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Like database_url, shared by the tests of one module."""
    yield from _database(request)


@pytest.fixture
def engine_url(database_url: str | None, tmp_path: Path) -> str:
    """A full SQLAlchemy URL for both backends (SQLite in tmp_path)."""
    return database_url or f"sqlite+aiosqlite:///{tmp_path / 'wcms.db'}"
