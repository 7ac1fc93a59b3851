"""The program supervisor with real child processes (``game.py``) and real state
directories: starts, crashes and backoff, in-game stops, events, console."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from wcms.agent.supervisor import ConsoleUnavailable
from wcms.protocol.programs import ProgramSet, ProgramState, Reason, RestartPolicy

from .supervision import (
    Supervisors,
    alive,
    console_text,
    event_seen,
    events,
    game,
    moves,
    state_is,
    status,
    until,
)

pytestmark = pytest.mark.anyio


async def test_it_is_running_once_its_ready_line_is_seen(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game("--ready-after", "0.3"))
    await state_is(supervisor, ProgramState.STARTING)
    running = await state_is(supervisor, ProgramState.RUNNING)
    assert moves(supervisor) == [
        ("stopped", "starting", "user_start"),
        ("starting", "running", "ready"),
    ]
    assert running.pid is not None and alive(running.pid)
    assert running.started_at is not None and running.uptime_s is not None
    assert "loading" in console_text(supervisor)
    assert supervisors.changes >= 2


async def test_it_measures_the_process_tree(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game())
    await state_is(supervisor, ProgramState.RUNNING)
    await until(lambda: status(supervisor).rss_bytes is not None)
    found = status(supervisor)
    assert found.rss_bytes is not None and found.rss_bytes > 1_000_000
    assert found.threads is not None and found.threads >= 1
    assert found.cpu_percent is not None


async def test_a_crash_is_restarted_after_its_backoff(
    supervisors: Supervisors, tmp_path: Path
) -> None:
    supervisor = await supervisors.started(game("--crash-once", str(tmp_path / "crashed")))
    crash = await event_seen(supervisor, Reason.CRASH, ProgramState.BACKOFF)
    assert crash.exit is not None and crash.exit.code == 3
    assert "crashing once" in crash.exit.tail
    retry = await event_seen(supervisor, Reason.RETRY)
    assert (retry.at - crash.at).total_seconds() >= 0.2 - 0.05
    running = await state_is(supervisor, ProgramState.RUNNING)
    assert running.restarts == 1 and running.crashes == 1
    assert running.last_exit is not None and running.last_exit.reason is Reason.CRASH


async def test_five_quick_crashes_are_a_crash_loop(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game("--crash", "2"))
    looping = await state_is(supervisor, ProgramState.CRASH_LOOP, timeout=10)
    crashes = [e for e in events(supervisor) if e.reason is Reason.CRASH]
    assert [e.to_state for e in crashes] == [ProgramState.BACKOFF] * 4 + [ProgramState.CRASH_LOOP]
    assert looping.crashes == 5
    assert looping.next_start_in_s is not None and 0.5 < looping.next_start_in_s <= 0.8
    # Never left dead: retried at the ceiling.
    await event_seen(supervisor, Reason.RETRY, ProgramState.STARTING)
    await until(lambda: len([e for e in events(supervisor) if e.reason is Reason.RETRY]) == 5)


async def test_an_exit_after_the_stop_line_is_an_in_game_stop(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game())
    await state_is(supervisor, ProgramState.RUNNING)
    assert await supervisor.send("game", "quit") == ""
    stopped = await event_seen(supervisor, Reason.IN_GAME_STOP)
    assert stopped.from_state is ProgramState.RUNNING and stopped.to_state is ProgramState.STOPPED
    assert stopped.exit is not None and stopped.exit.code == 0
    await asyncio.sleep(0.4)
    assert status(supervisor).state is ProgramState.STOPPED  # not restarted
    assert moves(supervisor)[-1] == ("running", "stopped", "in_game_stop")


async def test_a_clean_exit_is_restarted_only_by_the_always_policy(
    supervisors: Supervisors,
) -> None:
    supervisor = await supervisors.started(
        game(name="once", stop_line=None),
        game(name="forever", stop_line=None, restart=RestartPolicy.ALWAYS),
    )
    for name in ("once", "forever"):
        await state_is(supervisor, ProgramState.RUNNING, name)
        await supervisor.send(name, "exit 0")
    await event_seen(supervisor, Reason.EXITED, ProgramState.STOPPED, name="once")
    await event_seen(supervisor, Reason.EXITED, ProgramState.BACKOFF, name="forever")
    await event_seen(supervisor, Reason.RETRY, name="forever")
    assert status(supervisor, "once").state is ProgramState.STOPPED


async def test_a_missing_executable_is_start_failed_and_ends_in_crash_loop(
    supervisors: Supervisors, tmp_path: Path
) -> None:
    spec = game().model_copy(update={"command": [str(tmp_path / "no-such-game")]})
    supervisor = await supervisors.started(spec)
    failed = await event_seen(supervisor, Reason.START_FAILED)
    assert failed.from_state is ProgramState.STARTING
    assert failed.exit is not None and failed.exit.error is not None
    assert "No such file" in failed.exit.error
    looping = await state_is(supervisor, ProgramState.CRASH_LOOP, timeout=10)
    assert looping.error is not None and "no-such-game" in looping.error


async def test_a_missing_working_directory_is_start_failed(
    supervisors: Supervisors, tmp_path: Path
) -> None:
    supervisor = await supervisors.started(game(cwd=str(tmp_path / "nowhere")))
    failed = await event_seen(supervisor, Reason.START_FAILED)
    assert failed.exit is not None and "nowhere" in (failed.exit.error or "")


async def test_events_are_numbered_kept_and_acknowledged(
    supervisors: Supervisors,
) -> None:
    supervisor = await supervisors.started(game())
    await state_is(supervisor, ProgramState.RUNNING)
    supervisor.apply(ProgramSet(revision=2, programs=[game(desired="stopped")]))
    await state_is(supervisor, ProgramState.STOPPED)
    seqs = [e.seq for e in supervisor.report().events]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 4
    supervisor.acknowledge(2)
    assert [e.seq for e in supervisor.report().events] == seqs[2:]
    await supervisor.close()

    again = supervisors.new()
    assert again.revision == 2
    assert [e.seq for e in again.report().events] == seqs[2:]
    await again.start()
    again.apply(ProgramSet(revision=3, programs=[game()]))
    await state_is(again, ProgramState.RUNNING)
    assert [e.seq for e in again.report().events][-2:] == [5, 6]


async def test_the_state_file_is_written_on_changes_only(
    supervisors: Supervisors, tmp_path: Path
) -> None:
    supervisor = await supervisors.started(game())
    await state_is(supervisor, ProgramState.RUNNING)
    path = tmp_path / "state" / "programs" / "state.json"
    written = path.stat().st_mtime_ns
    await asyncio.sleep(0.5)  # ten watch rounds
    assert path.stat().st_mtime_ns == written
    saved = json.loads(path.read_text())
    assert saved["records"]["game"]["pid"] == status(supervisor).pid
    assert path.stat().st_mode & 0o077 == 0  # it holds the secret variables


async def test_console_follow_and_send_through_the_stdin_fifo(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game())
    await state_is(supervisor, ProgramState.RUNNING)
    assert supervisor.console("game", 2) == ["loading", "ready"]
    follower = supervisor.follow("game")
    first = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(0.1)
    assert await supervisor.send("game", "echo hello there") == ""
    assert await asyncio.wait_for(first, 2) == "got: echo hello there"
    assert await asyncio.wait_for(anext(follower), 2) == "hello there"
    await follower.aclose()  # type: ignore[attr-defined]
    assert supervisor.console("game", 2) == ["got: echo hello there", "hello there"]


async def test_unknown_programs_and_stopped_consoles_are_clear_errors(
    supervisors: Supervisors,
) -> None:
    supervisor = await supervisors.started(game(desired="stopped"))
    with pytest.raises(LookupError, match="no program named 'other'"):
        supervisor.console("other", 10)
    with pytest.raises(LookupError):
        await supervisor.send("other", "hi")
    with pytest.raises(ConsoleUnavailable, match="not running"):
        await supervisor.send("game", "hi")


async def test_a_changed_spec_applies_at_the_next_start(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game())
    first = await state_is(supervisor, ProgramState.RUNNING)
    supervisor.apply(ProgramSet(revision=2, programs=[game(env={"GAME_MODE": "hard"})]))
    await asyncio.sleep(0.3)
    assert status(supervisor).pid == first.pid
    assert [m[2] for m in moves(supervisor)] == ["user_start", "ready"]


async def test_a_removed_program_is_stopped_and_forgotten(supervisors: Supervisors) -> None:
    supervisor = await supervisors.started(game())
    running = await state_is(supervisor, ProgramState.RUNNING)
    supervisor.apply(ProgramSet(revision=2, programs=[]))
    await until(lambda: not supervisor.report().statuses)
    assert moves(supervisor)[-2:] == [
        ("running", "stopping", "removed"),
        ("stopping", "stopped", "removed"),
    ]
    assert running.pid is not None and not alive(running.pid)


async def test_a_stop_request_during_backoff_stops_waiting(supervisors: Supervisors) -> None:
    spec = game("--crash", "1")
    spec = spec.model_copy(update={"backoff": spec.backoff.model_copy(update={"initial_s": 30})})
    supervisor = await supervisors.started(spec)
    await state_is(supervisor, ProgramState.BACKOFF)
    started = time.monotonic()
    supervisor.apply(
        ProgramSet(revision=2, programs=[spec.model_copy(update={"desired": "stopped"})])
    )
    await state_is(supervisor, ProgramState.STOPPED)
    assert time.monotonic() - started < 1
    assert moves(supervisor)[-1] == ("backoff", "stopped", "user_stop")


async def test_a_big_console_log_is_capped(supervisors: Supervisors) -> None:
    log = supervisors.state_dir / "programs" / "game" / "console.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"old output line\n" * 300_000)  # 4.8 MB
    supervisor = await supervisors.started(game())
    await state_is(supervisor, ProgramState.RUNNING)
    assert log.stat().st_size <= 1024 * 1024 + 100
    assert supervisor.console("game", 3) == ["old output line", "loading", "ready"]
