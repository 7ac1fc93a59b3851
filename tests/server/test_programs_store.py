"""The programs store on SQLite and PostgreSQL: names unique per machine, revisions
that only rise, state changes stored once, an ack seq that never goes down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from tests.server.test_storage import add_machine, fresh
from wcms.server.store import program_events as event_store
from wcms.server.store import programs as store
from wcms.server.store.program_events import NewProgramEvent
from wcms.server.store.programs import NewProgram, ReportedStatus

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def new_program(name: str, revision: int = 1) -> NewProgram:
    return NewProgram(
        machine_id="m1",
        name=name,
        preset="generic",
        spec={"command": ["./srv"], "restart": "on-crash", "stop": {}},
        sealed_secrets=None,
        desired="stopped",
        restart_seq=0,
        revision=revision,
        created_at=NOW,
        updated_at=NOW,
        created_by="t",
    )


def event(seq: int, name: str = "p") -> NewProgramEvent:
    return NewProgramEvent("m1", name, seq, NOW, "stopped", "starting", "user_start", None, None)


def test_programs_revisions_and_events(engine_url):
    async def go() -> None:
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        async with engine.begin() as conn:
            assert (await store.set_of(conn, "m1")).revision == 0
            assert [await store.bump_revision(conn, "m1") for _ in range(3)] == [1, 2, 3]
            program_id = await store.create(conn, new_program("p"))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await store.create(conn, new_program("p"))
        async with engine.begin() as conn:
            assert await store.set_desired(
                conn, program_id, "running", restart=False, revision=4, at=NOW
            )
            # Already meant to run: nothing changes.
            assert not await store.set_desired(
                conn, program_id, "running", restart=False, revision=5, at=NOW
            )
            assert await store.set_desired(
                conn, program_id, "running", restart=True, revision=5, at=NOW
            )
            status = ReportedStatus("p", "running", 9, NOW, 2, None, 4, 1.5, 100, {"x": 1}, NOW)
            ghost = ReportedStatus("gone", "running", 1, NOW, 0, None, 0, 0, 0, {}, NOW)
            await store.set_statuses(conn, "m1", [status, ghost])
            assert await event_store.add(conn, [event(1), event(2)]) == {1, 2}
            assert await event_store.add(conn, [event(2), event(3)]) == {3}
            first = await store.record_report(conn, "m1", applied=3, acked_seq=3, at=NOW)
            later = await store.record_report(conn, "m1", applied=5, acked_seq=1, at=NOW)
        async with engine.connect() as conn:
            stored = await store.get(conn, "m1", "p")
            events = await event_store.of_program(conn, "m1", "p", limit=2)
        await engine.dispose()
        assert stored is not None
        assert (stored.desired, stored.restart_seq, stored.revision) == ("running", 1, 5)
        assert (stored.state, stored.pid, stored.players, stored.rss_bytes) == (
            "running",
            9,
            4,
            100,
        )
        assert [e.seq for e in events] == [2, 3]
        assert (first.acked_seq, first.revision) == (3, 3)
        assert (later.acked_seq, later.applied_revision) == (3, 5)

    asyncio.run(go())


def test_a_machine_removed_takes_its_programs(engine_url):
    async def go() -> list[str]:
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        async with engine.begin() as conn:
            await store.bump_revision(conn, "m1")
            await store.create(conn, new_program("p"))
            await conn.exec_driver_sql("DELETE FROM machines WHERE id = 'm1'")
        async with engine.connect() as conn:
            left = [p.name for p in await store.of_machines(conn, None)]
            sets = await store.sets_of(conn, ["m1"])
        await engine.dispose()
        assert sets == {}
        return left

    assert asyncio.run(go()) == []
