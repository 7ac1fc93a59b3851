"""One-statement batch writes on SQLite and PostgreSQL: what they store must read back
through SQLAlchemy's types exactly as if SQLAlchemy had written it row by row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast, insert, select

from wcms.server.store import bulk
from wcms.server.store.bulk import Encoded
from wcms.server.store.engine import create_engine
from wcms.server.store.migrate import upgrade
from wcms.server.store.tables import command_runs, commands, machine_status, machines

NOW = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


async def fresh(url: str):
    engine = create_engine(url)
    await upgrade(engine)
    return engine


async def add_command(conn) -> int:
    result = await conn.execute(
        commands.insert()
        .values(
            type="execute",
            selector="all",
            payload={"command": "true"},
            priority=0,
            timeout_s=60,
            max_retries=0,
            created_at=NOW,
            created_by="test",
        )
        .returning(commands.c.id)
    )
    return int(result.scalar_one())


def run_row(command_id: int, n: int) -> dict:
    return {
        "command_id": command_id,
        "machine_id": f"m{n}",
        "state": "queued",
        "priority": n % 3,
        "expires_at": None if n % 2 else NOW + timedelta(hours=n),
        "created_at": NOW,
    }


def test_inserted_rows_read_back_with_their_types_and_defaults(engine_url):
    async def go():
        engine = await fresh(engine_url)
        async with engine.begin() as conn:
            command_id = await add_command(conn)
            await bulk.insert_rows(conn, command_runs, [run_row(command_id, n) for n in range(500)])
        async with engine.connect() as conn:
            rows = (await conn.execute(select(command_runs).order_by(command_runs.c.id))).all()
        await engine.dispose()
        return rows

    rows = asyncio.run(go())
    assert [r.machine_id for r in rows] == [f"m{n}" for n in range(500)]
    assert rows[0].expires_at == NOW and rows[0].expires_at.tzinfo is not None
    assert rows[1].expires_at is None
    assert rows[4].expires_at == NOW + timedelta(hours=4)
    # Left out, so the columns' defaults: attempt 1, not truncated.
    assert {(r.attempt, r.stdout_truncated, r.stderr_truncated) for r in rows} == {
        (1, False, False)
    }
    assert [r.priority for r in rows[:4]] == [0, 1, 2, 0]


def test_updated_rows_get_their_own_values(engine_url):
    text = 'quotes " and \\ backslashes, 한글, and a newline\n'

    async def go():
        engine = await fresh(engine_url)
        async with engine.begin() as conn:
            command_id = await add_command(conn)
            await bulk.insert_rows(conn, command_runs, [run_row(command_id, n) for n in range(3)])
            ids = [r for (r,) in await conn.execute(select(command_runs.c.id))]
            await bulk.update_rows(
                conn,
                command_runs,
                "id",
                [
                    {
                        "id": run_id,
                        "state": "succeeded",
                        "exit_code": n,
                        "stdout": text * n,
                        "stdout_truncated": n == 2,
                        "result_data": {"n": n, "list": [1.5, None]} if n else None,
                        "finished_at": NOW + timedelta(seconds=n),
                    }
                    for n, run_id in enumerate(ids[:2])
                ],
            )
        async with engine.connect() as conn:
            rows = (await conn.execute(select(command_runs).order_by(command_runs.c.id))).all()
        await engine.dispose()
        return rows

    first, second, untouched = asyncio.run(go())
    assert (first.state, first.exit_code, first.stdout, first.result_data) == (
        "succeeded",
        0,
        "",
        None,
    )
    assert second.stdout == text and second.exit_code == 1
    assert second.result_data == {"n": 1, "list": [1.5, None]}
    assert second.finished_at == NOW + timedelta(seconds=1)
    assert not first.stdout_truncated and not second.stdout_truncated
    assert (untouched.state, untouched.exit_code) == ("queued", None)


def test_upserted_rows_replace_or_add_and_encoded_json_goes_in_as_is(engine_url):
    async def go():
        engine = await fresh(engine_url)
        async with engine.begin() as conn:
            await bulk.insert_rows(
                conn,
                machines,
                [
                    {"id": m, "hostname": m, "created_at": NOW, "updated_at": NOW}
                    for m in ("a", "b")
                ],
            )
            await bulk.upsert_rows(
                conn,
                machine_status,
                "machine_id",
                [{"machine_id": "a", "at": NOW, "report": {"v": 1}}],
            )
            await bulk.upsert_rows(
                conn,
                machine_status,
                "machine_id",
                [
                    {
                        "machine_id": "a",
                        "at": NOW + timedelta(seconds=5),
                        "report": Encoded('{"v":2}'),
                    },
                    {"machine_id": "b", "at": NOW, "report": Encoded('{"v":[3]}')},
                ],
            )
        async with engine.connect() as conn:
            rows = (await conn.execute(select(machine_status).order_by("machine_id"))).all()
            statuses = (await conn.execute(select(machines.c.status))).scalars().all()
        await engine.dispose()
        return rows, statuses

    rows, statuses = asyncio.run(go())
    assert [(r.machine_id, r.at, r.report) for r in rows] == [
        ("a", NOW + timedelta(seconds=5), {"v": 2}),
        ("b", NOW, {"v": [3]}),
    ]
    assert statuses == ["offline", "offline"]  # the column default


def test_rows_are_stored_in_the_very_form_sqlalchemy_stores_them(engine_url):
    """Raw stored values, not just values read back: SQLite compares timestamps as text,
    so a second text format would break every range query."""
    columns = [command_runs.c.expires_at, command_runs.c.stdout_truncated, command_runs.c.priority]

    async def go():
        engine = await fresh(engine_url)
        async with engine.begin() as conn:
            command_id = await add_command(conn)
            row = {**run_row(command_id, 0), "stdout_truncated": True}
            await conn.execute(insert(command_runs), [row])
            await bulk.insert_rows(conn, command_runs, [row])
            raw = (
                await conn.execute(
                    select(*(cast(c, String) for c in columns)).order_by(command_runs.c.id)
                )
            ).all()
        await engine.dispose()
        return raw

    by_core, by_bulk = asyncio.run(go())
    assert by_bulk == by_core
