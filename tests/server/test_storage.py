"""The storage layer on both SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command as alembic_command
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text, update

from wcms.protocol import RunState, StatusReport
from wcms.server.services.accounts import Accounts
from wcms.server.services.audit import Actor
from wcms.server.services.heartbeats import HeartbeatWriter
from wcms.server.services.selectors import resolve
from wcms.server.store import accounts as account_store
from wcms.server.store import commands as command_store
from wcms.server.store import credentials as cred_store
from wcms.server.store import machines as machine_store
from wcms.server.store import runs as run_store
from wcms.server.store import status as status_store
from wcms.server.store.commands import Births, NewCommand
from wcms.server.store.credentials import NewEnrollToken
from wcms.server.store.engine import Database, create_engine
from wcms.server.store.machines import InventoryFields, NewMachine, PresenceChange
from wcms.server.store.migrate import alembic_config, current_revision, upgrade
from wcms.server.store.runs import Move
from wcms.server.store.tables import command_runs, status_history
from wcms.server.telemetry import Telemetry

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def fresh(url: str):
    engine = create_engine(url)
    await upgrade(engine)
    return engine


async def add_machine(
    engine, machine_id: str, *, room: str | None = None, hostname: str | None = None
) -> None:
    fields = InventoryFields(
        hostname=hostname or machine_id,
        os="",
        agent_version="",
        ip=None,
        inventory={},
        updated_at=NOW,
    )
    async with engine.begin() as conn:
        await machine_store.create(conn, NewMachine(machine_id, room, NOW, fields))


def command(type_: str, payload: dict) -> NewCommand:
    return NewCommand(
        type=type_,
        selector="m1",
        payload=payload,
        sealed_secrets=None,
        priority=0,
        timeout_s=5,
        max_retries=0,
        idempotent=False,
        expires_at=None,
        created_at=NOW,
        created_by=None,
    )


def test_migrations_apply_and_reapply(engine_url):
    async def go():
        engine = await fresh(engine_url)
        await upgrade(engine)  # a second start changes nothing
        revision = await current_revision(engine)
        await engine.dispose()
        return revision

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert asyncio.run(go()) == head


def test_sqlite_runs_in_wal_mode(tmp_path):
    async def go():
        engine = await fresh(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        await engine.dispose()
        return mode

    assert asyncio.run(go()) == "wal"


def test_datetimes_come_back_aware_and_equal(engine_url):
    async def go():
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        async with engine.connect() as conn:
            row = await machine_store.get(conn, "m1")
        await engine.dispose()
        return row.created_at

    assert asyncio.run(go()) == NOW


def test_a_token_with_n_uses_enrols_exactly_n_under_contention(engine_url):
    async def go():
        engine = await fresh(engine_url)
        async with engine.begin() as conn:
            await cred_store.create_token(
                conn,
                NewEnrollToken(
                    id="t1",
                    secret_hash="h",
                    uses_allowed=3,
                    expires_at=NOW + timedelta(days=1),
                    created_at=NOW,
                    created_by=None,
                    note=None,
                    room=None,
                ),
            )

        async def consume():
            async with engine.begin() as conn:
                return await cred_store.consume_token(conn, "t1", now=NOW)

        results = await asyncio.gather(*(consume() for _ in range(10)))
        expired = None
        async with engine.begin() as conn:
            expired = await cred_store.consume_token(conn, "t1", now=NOW + timedelta(days=2))
            token = await cred_store.get_token(conn, "t1")
        await engine.dispose()
        return results, expired, token

    results, expired, token = asyncio.run(go())
    assert results.count(True) == 3
    assert expired is False
    assert token is not None and (token.uses_count, token.uses_allowed) == (3, 3)


def test_runs_never_move_backwards(engine_url):
    async def go():
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        new = command("execute", {"command": "x"})
        async with engine.begin() as conn:
            _, [(run_id, _)] = await command_store.create(conn, new, Births(["m1"]))
        steps = []
        async with engine.begin() as conn:
            for to in (
                RunState.RUNNING,
                RunState.SUCCEEDED,
                RunState.RUNNING,
                RunState.FAILED,
                RunState.DELIVERED,
                RunState.EXPIRED,
            ):
                steps.append(bool(await run_store.transition(conn, [run_id], Move(to, NOW))))
            events = await run_store.events_of(conn, [run_id])
        await engine.dispose()
        return steps, [e.state for e in events]

    steps, events = asyncio.run(go())
    assert steps == [True, True, False, False, False, False]
    assert events == ["queued", "running", "succeeded"]


def test_a_new_command_stores_each_run_born_in_its_own_state(engine_url):
    async def go():
        engine = await fresh(engine_url)
        for machine_id in ("m1", "m2", "m3"):
            await add_machine(engine, machine_id)
        deadline = NOW + timedelta(seconds=35)
        births = Births(
            ["m1", "m2", "m3"],
            delivered={"m1", "m3"},
            deadline=deadline,
            relays={"m1": "m2"},
            refusals={"m3": "refused: switched off"},
        )
        async with engine.begin() as conn:
            _, runs = await command_store.create(conn, command("wake", {}), births)
            run_of = {machine_id: run_id for run_id, machine_id in runs}
            query = select(command_runs).where(command_runs.c.id.in_(run_of.values()))
            rows = {r.machine_id: r for r in await conn.execute(query)}
            events = await run_store.events_of(conn, list(run_of.values()))
        await engine.dispose()
        return run_of, rows, events

    run_of, rows, events = asyncio.run(go())
    assert sorted(run_of) == ["m1", "m2", "m3"]
    m1, m2, m3 = rows["m1"], rows["m2"], rows["m3"]
    assert (m1.state, m1.delivered_at, m1.deadline_at, m1.relay_id) == (
        "delivered",
        NOW,
        NOW + timedelta(seconds=35),
        "m2",
    )
    assert (m2.state, m2.delivered_at, m2.deadline_at, m2.relay_id) == ("queued", None, None, None)
    assert (m3.state, m3.finished_at, m3.error) == ("failed", NOW, "refused: switched off")
    by_run: dict[int, list[tuple[str, str | None]]] = {}
    for event in events:
        by_run.setdefault(event.run_id, []).append((event.state, event.detail))
    assert by_run == {
        run_of["m1"]: [("queued", None), ("delivered", None)],
        run_of["m2"]: [("queued", None)],
        run_of["m3"]: [("queued", None), ("failed", "refused: switched off")],
    }


def test_heartbeats_are_written_in_batches(engine_url):
    async def go():
        engine = await fresh(engine_url)
        for n in range(5):
            await add_machine(engine, f"m{n}")
        telemetry = Telemetry()
        writer = HeartbeatWriter(Database(engine), telemetry=telemetry)
        report = StatusReport(cpu_percent=12.5, ram_used=1, ram_total=2, ram_percent=50)
        for _ in range(40):
            for n in range(5):
                writer.submit(f"m{n}", report)
        writer.submit("deleted-meanwhile", report)
        await writer.flush()
        async with engine.connect() as conn:
            rows = (await conn.execute(select(func.count()).select_from(status_history))).scalar()
            latest = await machine_store.status_for(conn, ["m0", "m4"])
        await engine.dispose()
        return rows, latest, telemetry.registry.get_sample_value("wcms_heartbeats_written_total")

    rows, latest, written = asyncio.run(go())
    assert rows == 200
    assert written == 200
    assert latest["m0"]["cpu_percent"] == 12.5 and "m4" in latest


def test_a_heartbeat_is_stored_field_for_field(engine_url):
    """The batched write path bypasses SQLAlchemy's per-row types: what it stores must
    read back through them exactly as if SQLAlchemy had written it."""
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    older = StatusReport(cpu_percent=1, ram_used=1, ram_total=2, ram_percent=50)
    report = StatusReport(
        cpu_percent=99.5,
        ram_used=6 * 2**30,
        ram_total=16 * 2**30,
        ram_percent=37.5,
        disks=[{"mount": "C:\\", "total": 2**40, "used": 2**39, "percent": 50.0}],
        users=["학생", 'o"brien'],
        uptime_s=3600.5,
        process_count=180,
    )

    async def go():
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        rows = [
            status_store.status_row("m1", at - timedelta(seconds=30), older),
            status_store.status_row("m1", at, report),
        ]
        async with engine.begin() as conn:
            await status_store.write_batch(conn, rows)
        async with engine.connect() as conn:
            history = (
                await conn.execute(select(status_history).order_by(status_history.c.id))
            ).all()
            latest = await machine_store.status_for(conn, ["m1"])
            machine = await machine_store.get(conn, "m1")
        await engine.dispose()
        return history, latest, machine

    history, latest, machine = asyncio.run(go())
    assert len(history) == 2
    row = history[-1]._mapping
    assert row["at"] == at and row["at"].tzinfo is not None
    assert (row["cpu_percent"], row["ram_used"], row["ram_percent"]) == (99.5, 6 * 2**30, 37.5)
    assert row["disks"] == [{"mount": "C:\\", "total": 2**40, "used": 2**39, "percent": 50.0}]
    assert row["users"] == ["학생", 'o"brien']
    assert (row["uptime_s"], row["process_count"]) == (3600.5, 180)
    assert latest["m1"] == report.model_dump(mode="json")  # the newest of the batch
    assert machine.last_seen_at == at


@pytest.mark.parametrize(
    "selector,expected",
    [
        ("all", ["a1", "a2", "b1"]),
        ("room:A", ["a1", "a2"]),
        ("tag:gpu", ["a2", "b1"]),
        ("online", ["b1"]),
        ("a1,tag:gpu", ["a1", "a2", "b1"]),
        ("host-b1", ["b1"]),
    ],
)
def test_selectors_resolve_to_machines(engine_url, selector, expected):
    async def go():
        engine = await fresh(engine_url)
        for machine_id, room in (("a1", "A"), ("a2", "A"), ("b1", "B")):
            await add_machine(engine, machine_id, room=room, hostname=f"host-{machine_id}")
        async with engine.begin() as conn:
            await machine_store.set_tags(conn, "a2", ["gpu"])
            await machine_store.set_tags(conn, "b1", ["gpu", "print"])
            await machine_store.set_presence_many(
                conn, [PresenceChange("b1", "online", "connected", NOW)]
            )
            found = await resolve(conn, selector)
        await engine.dispose()
        return sorted(found)

    assert asyncio.run(go()) == expected


def test_presence_transitions_in_one_batch_apply_in_order(engine_url):
    async def go():
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        later = NOW + timedelta(seconds=1)
        async with engine.begin() as conn:
            changed = await machine_store.set_presence_many(
                conn,
                [
                    PresenceChange("m1", "online", "connected", NOW),
                    PresenceChange("m1", "online", "connected", NOW),
                    PresenceChange("m1", "offline", "shutdown", later),
                    PresenceChange("missing", "online", "connected", NOW),
                ],
            )
        async with engine.connect() as conn:
            machine = await machine_store.get(conn, "m1")
            events = await machine_store.presence_history(conn, "m1", limit=10)
        await engine.dispose()
        return changed, machine, events

    changed, machine, events = asyncio.run(go())
    assert changed == [True, False, True, False]
    assert (machine.status, machine.status_reason) == ("offline", "shutdown")
    assert sorted((e.status, e.reason) for e in events) == [
        ("offline", "shutdown"),
        ("online", "connected"),
    ]


def test_an_api_key_is_checked_on_every_call_and_its_use_kept_to_the_minute(engine_url):
    async def go():
        engine = await fresh(engine_url)
        accounts = Accounts(Database(engine))
        created, key = await accounts.create_api_key("ci", actor=Actor("admin", None))
        first = await accounts.principal_for_key(key)
        async with engine.connect() as conn:
            used = (await account_store.get_api_key(conn, created.id)).last_used_at
        again = await accounts.principal_for_key(key)
        async with engine.connect() as conn:
            used_again = (await account_store.get_api_key(conn, created.id)).last_used_at
        wrong = await accounts.principal_for_key(key[:-1] + ("a" if key[-1] != "a" else "b"))
        await accounts.revoke_api_key(created.id, actor=Actor("admin", None))
        revoked = await accounts.principal_for_key(key)
        listed = await accounts.list_api_keys()
        await engine.dispose()
        return (created, key), first, used, again, used_again, wrong, revoked, listed

    (created, key), first, used, again, used_again, wrong, revoked, listed = asyncio.run(go())
    assert created.key == key and not created.revoked and created.last_used_at is None
    assert [(k.id, k.revoked, k.key) for k in listed] == [(created.id, True, None)]
    assert first is not None and again is not None and first.name == "key:ci"
    assert used is not None and used_again == used
    assert wrong is None
    assert revoked is None


def test_one_bad_heartbeat_costs_only_itself(engine_url):
    """A value no column holds (an integer past 64 bits) and a machine deleted while its
    heartbeat waited are dropped; every other heartbeat of the batch is stored, and the
    writer goes on."""

    async def go():
        engine = await fresh(engine_url)
        for n in range(6):
            await add_machine(engine, f"m{n}")
        telemetry = Telemetry()
        writer = HeartbeatWriter(Database(engine), telemetry=telemetry)
        good = StatusReport(cpu_percent=1, ram_used=1, ram_total=2, ram_percent=50)
        # The edge refuses such a value (see test_bad_input); the writer must survive
        # one that got past it all the same.
        poison = StatusReport.model_construct(
            cpu_percent=1,
            ram_used=2**64,
            ram_total=2,
            ram_percent=50,
            disks=[],
            users=[],
            uptime_s=0,
            process_count=0,
        )
        for n in range(6):
            writer.submit(f"m{n}", poison if n == 3 else good)
        writer.submit("deleted-meanwhile", good)
        await writer.flush()
        writer.submit("m3", good)  # the next batch is written as usual
        await writer.flush()
        async with engine.connect() as conn:
            stored = await conn.execute(select(status_history.c.machine_id))
            machines = sorted(row.machine_id for row in stored)
        await engine.dispose()
        return machines, telemetry.registry.get_sample_value("wcms_heartbeats_written_total")

    machines, written = asyncio.run(go())
    assert machines == ["m0", "m1", "m2", "m3", "m4", "m5"]
    assert written == 6


def test_migration_0004_keeps_existing_commands_runs_and_events(engine_url):
    """It adds commands.idempotent (false for the commands already there) and widens
    run exit codes without rebuilding a table: on SQLite a rebuild would delete every
    row that cascades from it."""

    async def go():
        engine = create_engine(engine_url)
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: alembic_command.upgrade(alembic_config(c), "0003"))
            for statement in (
                "INSERT INTO commands (id, type, selector, payload, priority, timeout_s,"
                " max_retries, created_at) VALUES (1, 'execute', 'm1', '{}', 0, 5, 0,"
                " '2026-01-01 12:00:00')",
                "INSERT INTO command_runs (id, command_id, machine_id, state, attempt, priority,"
                " created_at, stdout_truncated, stderr_truncated) VALUES (1, 1, 'm1', 'queued',"
                " 1, 0, '2026-01-01 12:00:00', false, false)",
                "INSERT INTO command_events (run_id, state, at) VALUES (1, 'queued',"
                " '2026-01-01 12:00:00')",
            ):
                await conn.execute(text(statement))
        await upgrade(engine)
        async with engine.begin() as conn:
            old = await command_store.get_command(conn, 1)
            events = await run_store.events_of(conn, [1])
            # A Windows exit code (STATUS_ACCESS_VIOLATION) past 32 bits.
            await conn.execute(
                update(command_runs).where(command_runs.c.id == 1).values(exit_code=0xC0000005)
            )
            [run] = await run_store.of_command(conn, 1)
        await engine.dispose()
        return old, events, run

    old, events, run = asyncio.run(go())
    assert old is not None and old.idempotent is False
    assert [e.state for e in events] == ["queued"]
    assert run.exit_code == 0xC0000005


def test_an_idempotent_command_says_so_to_its_runs_reports(engine_url):
    async def go():
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        new = replace(command("execute", {"command": "x"}), idempotent=True, max_retries=1)
        async with engine.begin() as conn:
            command_id, [(run_id, _)] = await command_store.create(conn, new, Births(["m1"]))
            stored = await command_store.get_command(conn, command_id)
            reported = await run_store.reported(conn, [run_id])
        await engine.dispose()
        return stored, reported[run_id]

    stored, reported = asyncio.run(go())
    assert stored is not None and stored.idempotent is True
    assert (reported.idempotent, reported.max_retries) == (True, 1)
