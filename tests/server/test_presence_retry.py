"""Presence writes while the database is away, in process on a real PostgreSQL that is
taken away for real (``ALLOW_CONNECTIONS false``, its backends terminated): an offline
that could not be stored is kept until it is, or until the machine is back; an online
that could not be stored leaves no link behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from tests.conftest import (
    _pg,
    allow_connections,
    drop_pg_database,
    make_pg_database,
    refuse_connections,
)
from wcms.protocol import RunEnvelope
from wcms.server.errors import StorageError
from wcms.server.services.links import AgentLink, LinkRegistry
from wcms.server.services.presence import Presence
from wcms.server.settings import Settings
from wcms.server.store import machines as machine_store
from wcms.server.store.engine import Database, create_engine
from wcms.server.store.machines import InventoryFields, NewMachine
from wcms.server.store.migrate import upgrade

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class QuietLink(AgentLink):
    """A link whose agent never needs to be told anything: what is tested here is the
    presence bookkeeping, not a transport."""

    transport = "ws"

    async def offer(self, runs: Sequence[RunEnvelope]) -> bool:
        return False

    async def cancel(self, run_id: int) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        self.closed = True


@pytest.fixture
def pg_url(postgres_ready: None) -> Iterator[str]:
    name, url = make_pg_database()
    try:
        yield url
    finally:
        asyncio.run(_pg(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        drop_pg_database(name)


@asynccontextmanager
async def presence_on(url: str, **settings: float) -> AsyncIterator[tuple[Presence, Database]]:
    db = Database(create_engine(url))
    await upgrade(db.engine)
    async with db.begin() as conn:
        fields = InventoryFields(
            hostname="m1", os="", agent_version="", ip=None, inventory={}, updated_at=NOW
        )
        await machine_store.create(conn, NewMachine("m1", None, NOW, fields))
    presence = Presence(db, LinkRegistry(), Settings(database_url=url, **settings))
    try:
        yield presence, db
    finally:
        await presence.close()
        await db.dispose()


async def take_away(db: Database) -> None:
    await refuse_connections(str(db.engine.url.database))
    await db.engine.dispose()


async def bring_back(db: Database) -> None:
    await allow_connections(str(db.engine.url.database))


async def status(db: Database) -> tuple[str, str | None, list[str]]:
    async with db.connect() as conn:
        machine = await machine_store.get(conn, "m1")
        events = await machine_store.presence_history(conn, "m1", limit=10)
    assert machine is not None
    return machine.status, machine.status_reason, [e.status for e in events]


async def until_status(presence: Presence, db: Database, wanted: str) -> None:
    """Sweep (as the sweeper does, every second) until m1 is ``wanted``; 10 s at most."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await presence.sweep()
        if (await status(db))[0] == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"m1 not {wanted}: {await status(db)}")


def test_an_offline_not_stored_is_written_by_a_later_sweep(pg_url):
    async def go() -> tuple[int, int, tuple[str, str | None, list[str]]]:
        async with presence_on(pg_url) as (presence, db):
            link = QuietLink("m1", "s1")
            await presence.attach(link)
            await take_away(db)
            await presence.detach(link, reason="shutdown")  # does not raise
            await presence.sweep()  # still away: kept
            kept = presence.pending_writes()
            await bring_back(db)
            await presence.sweep()
            return kept, presence.pending_writes(), await status(db)

    kept, left, (state, reason, history) = asyncio.run(go())
    assert (kept, left) == (1, 0)
    assert (state, reason) == ("offline", "shutdown")
    assert history == ["offline", "online"]


def test_an_offline_not_stored_is_dropped_once_the_machine_is_back(pg_url):
    async def go() -> tuple[int, tuple[str, str | None, list[str]]]:
        async with presence_on(pg_url) as (presence, db):
            await presence.attach(QuietLink("m1", "s1"))
            await take_away(db)
            await presence.mark_offline("m1", "shutdown")
            await bring_back(db)
            await presence.attach(QuietLink("m1", "s2"))  # back before the next sweep
            await presence.sweep()
            return presence.pending_writes(), await status(db)

    left, (state, _, history) = asyncio.run(go())
    assert left == 0
    assert state == "online"
    assert history == ["online"], "the stale offline was written after all"


def test_an_online_not_stored_refuses_the_link_and_leaves_none_behind(pg_url):
    """The agent is refused (and tries again); the machine, online in the database from
    before, gets the grace any dropped link gets, then is offline."""

    async def go() -> tuple[bool, AgentLink | None, tuple[str, str | None, list[str]]]:
        async with presence_on(pg_url, offline_grace=0.2) as (presence, db):
            await presence.attach(QuietLink("m1", "s1"))
            await take_away(db)
            refused = False
            try:
                await presence.attach(QuietLink("m1", "s2"))
            except StorageError:
                refused = True
            left = presence.registry.get("m1")
            await bring_back(db)
            await until_status(presence, db, "offline")
            return refused, left, await status(db)

    refused, left, (state, reason, _) = asyncio.run(go())
    assert refused
    assert left is None
    assert (state, reason) == ("offline", "connection_lost")
