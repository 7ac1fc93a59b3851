"""Intended stops: the stop sequence step by step, the whole tree gone, restarts that
never overlap, and the restarts the health watch and the schedule ask for."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from wcms.agent.supervisor import watch
from wcms.protocol.programs import Probe, ProgramSet, ProgramState, Reason, StopSequence

from .supervision import (
    Supervisors,
    alive,
    console_text,
    event_seen,
    game,
    moves,
    state_is,
    status,
    until,
)

pytestmark = pytest.mark.anyio


def stopped(spec_args: tuple[str, ...] = (), **fields: Any) -> ProgramSet:
    return ProgramSet(revision=2, programs=[game(*spec_args, desired="stopped", **fields)])


async def test_the_stop_command_goes_to_stdin_and_ends_it(supervisors: Supervisors) -> None:
    announce = StopSequence(
        announce="restart in {minutes} min", save="save-all", command="stop", timeout_s=2
    )
    supervisor = await supervisors.started(game(stop=announce))
    await state_is(supervisor, ProgramState.RUNNING)
    supervisor.apply(stopped(stop=announce))
    done = await event_seen(supervisor, Reason.USER_STOP, ProgramState.STOPPED)
    assert moves(supervisor)[-2:] == [
        ("running", "stopping", "user_stop"),
        ("stopping", "stopped", "user_stop"),
    ]
    assert done.detail is not None
    assert done.detail.startswith("announcement sent; save sent; stop command sent; exited")
    assert "SIGTERM" not in done.detail
    assert done.exit is not None and done.exit.code == 0
    text = console_text(supervisor)
    assert text.index("got: restart in 0 min") < text.index("got: save-all")
    assert text.index("got: save-all") < text.index("got: stop")


async def test_sigterm_follows_an_ignored_stop_command(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game("--ignore-stop"))
    await state_is(supervisor, ProgramState.RUNNING)
    supervisor.apply(stopped(("--ignore-stop",)))
    done = await event_seen(supervisor, Reason.USER_STOP, ProgramState.STOPPED)
    assert done.detail is not None
    assert "stop command sent; asked to terminate" in done.detail
    assert "killed" not in done.detail
    assert "got: stop" in console_text(supervisor)
    assert "got SIGTERM" in console_text(supervisor)
    assert done.exit is not None and done.exit.code == 143


async def test_the_tree_is_killed_when_sigterm_is_ignored_too(
    supervisors: Supervisors, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild"
    args = ("--ignore-stop", "--ignore-term", "--grandchild", str(pidfile))
    supervisor = await supervisors.started(game(*args))
    running = await state_is(supervisor, ProgramState.RUNNING)
    grandchild = int(pidfile.read_text())
    assert alive(grandchild)
    supervisor.apply(stopped(args))
    done = await event_seen(supervisor, Reason.USER_STOP, ProgramState.STOPPED, timeout=8)
    assert done.detail is not None and done.detail.endswith("killed")
    # Killed by us while stopping: a user stop, not an OOM.
    assert done.exit is not None and done.exit.signal == 9
    assert done.exit.reason is Reason.USER_STOP
    assert running.pid is not None and not alive(running.pid)
    assert not alive(grandchild)


async def test_a_restart_never_overlaps_the_old_run(
    supervisors: Supervisors, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ("--stop-takes", "0.3", "--runs", str(runs))
    supervisor = await supervisors.started(game(*args))
    first = await state_is(supervisor, ProgramState.RUNNING)
    supervisor.apply(ProgramSet(revision=2, programs=[game(*args, restart_seq=1)]))
    await event_seen(supervisor, Reason.USER_RESTART, ProgramState.STARTING)
    second = await state_is(supervisor, ProgramState.RUNNING)
    assert second.pid != first.pid
    assert [line.split()[:2] for line in runs.read_text().splitlines()] == [
        ["start", str(first.pid)],
        ["end", str(first.pid)],
        ["start", str(second.pid)],
    ]
    assert [m[2] for m in moves(supervisor)] == [
        "user_start",
        "ready",
        "user_restart",
        "user_restart",
        "user_restart",
        "ready",
    ]
    assert second.restarts == 1 and second.restart_seq == 1


async def test_a_restart_request_during_a_stop_waits_for_it(supervisors: Supervisors) -> None:
    args = ("--stop-takes", "0.3")
    supervisor = await supervisors.started(game(*args))
    await state_is(supervisor, ProgramState.RUNNING)
    supervisor.apply(stopped(args))
    await state_is(supervisor, ProgramState.STOPPING)
    supervisor.apply(ProgramSet(revision=3, programs=[game(*args, restart_seq=1)]))
    await event_seen(supervisor, Reason.USER_START, ProgramState.STARTING)
    await state_is(supervisor, ProgramState.RUNNING)
    assert [m[2] for m in moves(supervisor)] == [
        "user_start",
        "ready",
        "user_stop",
        "user_stop",
        "user_start",
        "ready",
    ]
    assert status(supervisor).restart_seq == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_probe_makes_it_ready_and_a_hang_restarts_it(supervisors: Supervisors) -> None:
    port = free_port()
    probe = Probe(url=f"tcp://127.0.0.1:{port}", interval_s=1, timeout_s=0.5, start_grace_s=0)
    listening = game("--listen", str(port), "--ready-after", "0.2", ready_line=None, probe=probe)
    supervisor = await supervisors.started(listening)
    await state_is(supervisor, ProgramState.RUNNING)
    assert status(supervisor).probe_ok is True

    silent = game(name="silent", ready_line=None, probe=probe.model_copy(update={"failures": 1}))
    supervisor.apply(ProgramSet(revision=2, programs=[silent]))
    await until(lambda: len(supervisor.report().statuses) == 1)
    hung = await event_seen(supervisor, Reason.HANG, ProgramState.BACKOFF, name="silent")
    assert hung.detail is not None and "probes missed" in " ".join(
        e.detail or "" for e in supervisor.report().events if e.name == "silent"
    )
    assert moves(supervisor, "silent")[-2][1:] == ("stopping", "hang")
    await event_seen(supervisor, Reason.RETRY, name="silent")


async def test_a_scheduled_restart_counts_down_then_restarts(
    supervisors: Supervisors, monkeypatch: pytest.MonkeyPatch
) -> None:
    fires: list[datetime] = []

    def soon(cron: str, after: datetime) -> datetime:
        fires.append(after)
        return after + timedelta(seconds=0.4 if len(fires) == 1 else 3600)

    monkeypatch.setattr(watch, "next_fire", soon)
    stop = StopSequence(
        announce="restart in {minutes} minutes", countdown_min=[5, 1], command="stop"
    )
    supervisor = await supervisors.started(game(schedule="0 5 * * *", stop=stop))
    first = await state_is(supervisor, ProgramState.RUNNING)
    done = await event_seen(supervisor, Reason.SCHEDULED_RESTART, ProgramState.STOPPED)
    second = await state_is(supervisor, ProgramState.RUNNING)
    assert second.pid != first.pid
    text = console_text(supervisor)
    # One announcement, of the nearest step: the next-to-last one was already past.
    assert text.count("got: restart in") == 1 and "got: restart in 1 minutes" in text
    assert done.detail is not None and not done.detail.startswith("announcement")
    assert all(f.tzinfo is UTC for f in fires)
