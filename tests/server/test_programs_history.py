"""Programs' measurement history on SQLite and PostgreSQL: sampled from agents' reports
once per half heartbeat interval and only while running, answered in time buckets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.test_programs_api import Harness
from tests.server.test_programs_store import new_program
from tests.server.test_storage import add_machine, fresh
from wcms.protocol.programs import ProgramReport, ProgramState, ProgramStatus
from wcms.server.app import create_app
from wcms.server.services.programs import reports
from wcms.server.settings import Settings
from wcms.server.store import program_samples as store
from wcms.server.store import programs as program_store
from wcms.server.store.program_samples import NewSample

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MACHINE = "game-1"


def sample(name: str, seconds: float, cpu: float, rss: int, players: int | None) -> NewSample:
    return NewSample("m1", name, NOW + timedelta(seconds=seconds), cpu, rss, players)


def test_samples_are_due_once_per_interval_and_bucketed(engine_url):
    async def go() -> None:
        engine = await fresh(engine_url)
        await add_machine(engine, "m1")
        async with engine.begin() as conn:
            await program_store.create(conn, new_program("p"))
            await program_store.create(conn, new_program("q"))
            assert await store.due(conn, "m1", ["p", "q", "ghost"], since=NOW) == {"p", "q"}
            await store.add(
                conn,
                [
                    sample("p", 0, 10.0, 100, 2),
                    sample("p", 20, 30.0, 300, 4),
                    sample("p", 70, 50.0, 500, None),
                    sample("q", 0, 99.0, 9, 9),
                ],
            )
            assert await store.due(conn, "m1", ["p", "q"], since=NOW + timedelta(seconds=30)) == {
                "q"
            }
        async with engine.connect() as conn:
            found = await store.buckets(conn, "m1", "p", since=NOW, bucket_s=60)
            later = await store.buckets(
                conn, "m1", "p", since=NOW + timedelta(seconds=60), bucket_s=60
            )
        await engine.dispose()
        start = int(NOW.timestamp())
        assert [b.start_s for b in found] == [start, start + 60]
        first, second = found
        assert (first.cpu, first.rss, first.rss_max) == (20.0, 200.0, 300)
        assert (first.players, first.players_max) == (3.0, 4)
        assert (second.cpu, second.rss_max, second.players, second.players_max) == (
            50.0,
            500,
            None,
            None,
        )
        assert [b.start_s for b in later] == [start + 60]

    asyncio.run(go())


@pytest.fixture(scope="module")
def harness(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("history")),
        database_url=module_database_url,
        admin_password="x" * 12,
        heartbeat_interval=20,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        harness = Harness(client, app.state.core)
        harness.enrol(MACHINE)
        for name in ("mc", "idle"):
            body = {"machine": MACHINE, "name": name, "command": ["./srv"]}
            harness.call("POST", "/api/programs", body, status=201)
        yield harness


def status(name: str, state: ProgramState, **fields: Any) -> ProgramStatus:
    return ProgramStatus(name=name, state=state, **fields)


def report_at(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, at: datetime, *statuses: ProgramStatus
) -> None:
    monkeypatch.setattr(reports, "utcnow", lambda: at)
    report = ProgramReport(revision=0, statuses=list(statuses))
    harness.client.portal.call(harness.core.programs.apply_report, MACHINE, report)


def stored(harness: Harness, name: str) -> list[datetime]:
    async def read() -> list[datetime]:
        async with harness.core.db.connect() as conn:
            found = await store.buckets(
                conn, MACHINE, name, since=datetime(2000, 1, 1, tzinfo=UTC), bucket_s=1
            )
        return [datetime.fromtimestamp(b.start_s, UTC) for b in found]

    return harness.client.portal.call(read)


def test_reports_are_sampled_once_per_half_interval_while_running(harness, monkeypatch):
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    running = status("mc", ProgramState.RUNNING, cpu_percent=12.5, rss_bytes=2**20, players=3)
    stopped = status("idle", ProgramState.STOPPED)
    report_at(harness, monkeypatch, base, running, stopped)
    # Reports on every change: within the half interval (10 s), no second sample.
    report_at(harness, monkeypatch, base + timedelta(seconds=4), running, stopped)
    report_at(harness, monkeypatch, base + timedelta(seconds=9), running)
    report_at(harness, monkeypatch, base + timedelta(seconds=11), running, stopped)
    starting = status("mc", ProgramState.STARTING, cpu_percent=90.0)
    report_at(harness, monkeypatch, base + timedelta(seconds=40), starting)
    assert stored(harness, "mc") == [base, base + timedelta(seconds=11)]
    assert stored(harness, "idle") == []

    answer = harness.call("GET", f"/api/programs/{MACHINE}/mc/history?hours=1")
    assert answer["bucket_s"] == 10
    assert len(answer["t"]) == 2 and answer["t"][0] <= base.timestamp() < answer["t"][0] + 10
    assert answer["cpu"] == [12.5, 12.5]
    assert answer["rss_max"] == [2**20, 2**20] and answer["players_max"] == [3, 3]
    day = harness.call("GET", f"/api/programs/{MACHINE}/mc/history?hours=24")
    assert day["bucket_s"] == 240 and len(day["t"]) in (1, 2)
    assert harness.call("GET", f"/api/programs/{MACHINE}/idle/history")["t"] == []


@pytest.mark.parametrize(
    ("path", "status", "code", "field"),
    [
        (f"/api/programs/{MACHINE}/mc/history?hours=0", 422, "invalid", "hours"),
        (f"/api/programs/{MACHINE}/mc/history?hours=-1", 422, "invalid", "hours"),
        (f"/api/programs/{MACHINE}/mc/history?hours=2161", 422, "invalid", "hours"),
        (f"/api/programs/{MACHINE}/mc/history?hours=soon", 422, "invalid", "hours"),
        (f"/api/programs/{MACHINE}/nope/history", 404, "not_found", None),
        ("/api/programs/nobody/mc/history", 404, "not_found", None),
    ],
)
def test_bad_history_requests_are_refused(harness, path, status, code, field):
    error = harness.call("GET", path, status=status)["error"]
    assert error["code"] == code
    assert error.get("field") == field
