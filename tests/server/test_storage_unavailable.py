"""A database that is full or down: a 503 with a JSON error, never a stack trace, and
nothing half-stored.

SQLite is made full for real (``max_page_count`` at the file's current size: the same
SQLITE_FULL a full disk gives); PostgreSQL is made to refuse connections for real
(``ALLOW_CONNECTIONS false`` and its backends terminated).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import allow_connections, refuse_connections
from wcms.server.app import create_app
from wcms.server.core import Core
from wcms.server.errors import StorageError
from wcms.server.services.audit import Actor
from wcms.server.settings import Settings
from wcms.server.store.tables import files


@asynccontextmanager
async def running(tmp_path: Path, database_url: str | None) -> AsyncIterator[tuple[Core, str]]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, admin_password="x" * 12)
    app = create_app(settings)
    core: Core = app.state.core
    await core.start()
    try:
        _, key = await core.accounts.create_api_key("test", actor=Actor("test"))
        yield core, key
    finally:
        await core.stop()


async def make_unavailable(
    engine: AsyncEngine, database_url: str | None
) -> Callable[[], Awaitable[None]]:
    """Make the database fail every write; returns what makes it work again."""
    if database_url is None:
        async with engine.connect() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar()

        def full(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA max_page_count = {int(pages or 1)}")
            cursor.close()

        event.listen(engine.sync_engine, "connect", full)
        await engine.dispose()

        async def restore_sqlite() -> None:
            event.remove(engine.sync_engine, "connect", full)
            await engine.dispose()

        return restore_sqlite
    name = engine.url.database
    await refuse_connections(str(name))
    await engine.dispose()

    async def restore_postgres() -> None:
        await allow_connections(str(name))
        await engine.dispose()

    return restore_postgres


async def stored_files(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(files))).scalar_one())


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


def test_the_api_answers_503_in_json_when_the_database_fails(tmp_path, database_url):
    async def go() -> tuple[int, dict[str, Any], int, int]:
        async with running(tmp_path, database_url) as (core, key):
            engine = core.db.engine
            restore = await make_unavailable(engine, database_url)
            transport = httpx.ASGITransport(app=create_app(core.settings, core=core))
            async with httpx.AsyncClient(transport=transport, base_url="http://wcms") as client:
                answer = await client.post(
                    "/api/files",
                    params={"name": "big.bin"},
                    content=os.urandom(300_000),
                    headers={"Authorization": f"Bearer {key}"},
                )
                ready = await client.get("/readyz")
                metrics = (await client.get("/metrics")).text
            await restore()
            return answer, ready, metrics, await stored_files(engine)

    answer, ready, metrics, stored = run(go)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "storage_unavailable"
    assert "Traceback" not in answer.text
    # A full disk still answers reads, but the server is not ready: it cannot write.
    assert ready.status_code == 503
    code = "storage_unwritable" if database_url is None else "database_unavailable"
    assert ready.json()["error"]["code"] == code
    if database_url is None:  # the failed write was seen (on PostgreSQL, the connect)
        assert "wcms_storage_writable 0.0" in metrics
    assert stored == 0


def test_a_dead_worker_makes_the_server_not_ready(tmp_path, database_url):
    async def go() -> tuple[httpx.Response, httpx.Response, str]:
        async with running(tmp_path, database_url) as (core, _):
            transport = httpx.ASGITransport(app=create_app(core.settings, core=core))
            async with httpx.AsyncClient(transport=transport, base_url="http://wcms") as client:
                before = await client.get("/readyz")
                await core.sweeper.stop()  # as if it had died
                after = await client.get("/readyz")
                metrics = (await client.get("/metrics")).text
            core.sweeper.start()
            return before, after, metrics

    before, after, metrics = run(go)
    assert before.status_code == 200, before.text
    assert before.json()["workers"] == {
        "heartbeats": True,
        "status-feed": True,
        "sweeper": True,
        "alert-engine": True,
        "alert-outbox": True,
    }
    assert after.status_code == 503
    assert after.json()["error"]["code"] == "worker_down"
    assert "sweeper" in after.json()["error"]["message"]
    assert 'wcms_worker_up{worker="sweeper"} 0.0' in metrics
    assert 'wcms_worker_up{worker="heartbeats"} 1.0' in metrics


def test_services_raise_storage_error_not_driver_errors(tmp_path, database_url):
    async def go() -> BaseException | None:
        async with running(tmp_path, database_url) as (core, _):
            engine = core.db.engine
            restore = await make_unavailable(engine, database_url)
            try:
                await core.files.upload(
                    os.urandom(300_000), name="x.bin", content_type=None, actor=Actor("t")
                )
            except Exception as exc:  # the point: which exception
                caught: BaseException | None = exc
            else:
                caught = None
            await restore()
            return caught

    caught = run(go)
    assert isinstance(caught, StorageError), repr(caught)
