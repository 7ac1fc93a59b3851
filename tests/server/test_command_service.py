"""The command service in process, on a real database: what no HTTP test can see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from wcms.protocol import CommandCreate
from wcms.server import core as core_module
from wcms.server.core import Core
from wcms.server.services.audit import Actor
from wcms.server.settings import Settings
from wcms.server.store import machines as machine_store
from wcms.server.store.machines import InventoryFields, NewMachine

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ADMIN = Actor("test")


@asynccontextmanager
async def started(tmp_path: Path, database_url: str | None) -> AsyncIterator[Core]:
    core = Core(Settings(data_dir=tmp_path, database_url=database_url, admin_password="x" * 12))
    await core.start()
    try:
        yield core
    finally:
        await core.stop()


async def add_machines(core: Core, *ids: str, macs: list[str] | None = None) -> None:
    async with core.db.begin() as conn:
        for machine_id in ids:
            fields = InventoryFields(
                hostname=machine_id,
                os="",
                agent_version="",
                ip="10.0.0.1",
                inventory={"macs": macs or []},
                updated_at=NOW,
            )
            await machine_store.create(conn, NewMachine(machine_id, "A101", NOW, fields))


def test_waits_that_end_leave_nothing_behind(tmp_path, database_url):
    async def go() -> tuple[int, int]:
        async with started(tmp_path, database_url) as core:
            await add_machines(core, "m1")
            command_id = await core.commands.create(
                CommandCreate(selector="m1", type="execute", payload={"command": "true"}),
                actor=ADMIN,
            )
            await core.commands.cancel(command_id, actor=ADMIN)
            for _ in range(50):  # a command that is done: the wait ends at once
                assert await core.commands.wait(command_id, timeout_s=1)
            other = await core.commands.create(
                CommandCreate(selector="m1", type="execute", payload={"command": "true"}),
                actor=ADMIN,
            )
            waits = [
                asyncio.create_task(core.commands.wait(other, timeout_s=0.2)) for _ in range(5)
            ]
            await asyncio.sleep(0.05)
            during = core.commands.waiting()
            assert not any(await asyncio.gather(*waits))  # timed out: nobody ran it
            return during, core.commands.waiting()

    during, after = asyncio.run(go())
    assert during == 5
    assert after == 0


def test_a_wake_command_reads_only_the_machines_it_concerns(tmp_path, database_url):
    """Routing a wake reads the targets and where the online machines are; not every
    machine with its inventory."""

    async def go() -> list[str]:
        async with started(tmp_path, database_url) as core:
            await add_machines(core, *(f"m{n}" for n in range(20)), macs=["aa:bb:cc:dd:ee:ff"])
            statements: list[str] = []

            def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                statements.append(" ".join(statement.split()))

            sync_engine = core.db.engine.sync_engine
            event.listen(sync_engine, "before_cursor_execute", seen)
            try:
                await core.commands.create(
                    CommandCreate(selector="m3", type="wake", payload={}), actor=ADMIN
                )
            finally:
                event.remove(sync_engine, "before_cursor_execute", seen)
            return statements

    statements = asyncio.run(go())
    machine_reads = [s for s in statements if s.startswith("SELECT") and "FROM machines" in s]
    assert machine_reads
    for statement in machine_reads:
        assert " WHERE " in statement, statement
        if "inventory" in statement:
            assert "machines.id IN" in statement or "machines.id =" in statement, statement


def test_the_core_reads_its_secret_key_once(tmp_path, monkeypatch):
    calls: list[Path] = []
    load = core_module.crypto.load_or_create_key

    def counting(path: Path) -> str:
        calls.append(path)
        return load(path)

    monkeypatch.setattr(core_module.crypto, "load_or_create_key", counting)
    core = Core(Settings(data_dir=tmp_path, admin_password="x" * 12))
    asyncio.run(core.db.dispose())
    assert calls == [tmp_path / "secret.key"]
