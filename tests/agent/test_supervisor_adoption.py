"""Agent restarts: the programs outlive the agent, a new supervisor adopts them, and
what happened while no agent watched is recorded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from wcms.protocol.programs import ProgramSet, ProgramState, Reason, RestartPolicy

from .supervision import (
    GAME,
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


def games() -> list[psutil.Process]:
    """The stand-in games this test started: the supervisors run in this process, so
    every game they spawn is its descendant (other test workers run games of their own)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if GAME in process.cmdline() and process.status() != "zombie":
                found.append(process)
    return found


def reap(pid: int) -> None:
    """The test process is the game's parent: collect its zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


async def test_the_program_outlives_the_supervisor_and_is_adopted(
    supervisors: Supervisors,
) -> None:
    first = await supervisors.started(game())
    running = await state_is(first, ProgramState.RUNNING)
    await first.close()
    assert running.pid is not None and alive(running.pid)

    second = supervisors.new()
    await second.start()
    adopted = await event_seen(second, Reason.ADOPTED)
    assert adopted.from_state is ProgramState.RUNNING
    assert adopted.to_state is ProgramState.RUNNING
    assert status(second).pid == running.pid
    assert [p.pid for p in games()] == [running.pid]  # no second process
    # Its stdin FIFO still reaches it.
    await second.send("game", "echo still here")
    await until(lambda: "still here" in second.console("game", 5))

    # Not our child any more (as for a real restarted agent): its exit is polled.
    second.apply(ProgramSet(revision=2, programs=[game(desired="stopped")]))
    done = await event_seen(second, Reason.USER_STOP, ProgramState.STOPPED)
    assert done.detail is not None and done.detail.startswith("stop command sent; exited")
    assert "got: stop" in console_text(second)


async def test_a_program_seen_dying_after_adoption_is_a_crash(supervisors: Supervisors) -> None:
    first = await supervisors.started(game())
    running = await state_is(first, ProgramState.RUNNING)
    await first.close()
    second = supervisors.new()
    await second.start()
    await event_seen(second, Reason.ADOPTED)
    assert running.pid is not None
    os.kill(running.pid, signal.SIGKILL)
    reap(running.pid)
    crash = await event_seen(second, Reason.CRASH, ProgramState.BACKOFF)
    assert crash.exit is not None and crash.exit.code is None and crash.exit.signal is None
    await state_is(second, ProgramState.RUNNING)


async def test_a_program_that_died_while_no_agent_ran_is_restarted(
    supervisors: Supervisors,
) -> None:
    first = await supervisors.started(game())
    running = await state_is(first, ProgramState.RUNNING)
    await first.close()
    assert running.pid is not None
    os.kill(running.pid, signal.SIGKILL)
    reap(running.pid)

    second = supervisors.new()
    await second.start()
    ended = await event_seen(second, Reason.AGENT_STOPPED)
    assert ended.from_state is ProgramState.RUNNING
    assert ended.exit is not None and "ready" in ended.exit.tail
    await event_seen(second, Reason.RETRY)
    again = await state_is(second, ProgramState.RUNNING)
    assert again.pid != running.pid


async def test_it_stays_stopped_when_its_policy_says_never(supervisors: Supervisors) -> None:
    first = await supervisors.started(game(restart=RestartPolicy.NEVER))
    running = await state_is(first, ProgramState.RUNNING)
    await first.close()
    assert running.pid is not None
    os.kill(running.pid, signal.SIGKILL)
    reap(running.pid)

    second = supervisors.new()
    await second.start()
    await event_seen(second, Reason.AGENT_STOPPED, ProgramState.STOPPED)
    assert moves(second)[-1] == ("running", "stopped", "agent_stopped")


async def test_the_crash_record_survives_a_restart(supervisors: Supervisors) -> None:
    first = await supervisors.started(game("--crash", "4"))
    looping = await state_is(first, ProgramState.CRASH_LOOP, timeout=10)
    last_seq = first.report().events[-1].seq
    await first.close()

    second = supervisors.new()
    restored = status(second)
    assert restored.state is ProgramState.CRASH_LOOP
    assert restored.crashes == looping.crashes == 5
    assert restored.last_exit is not None and restored.last_exit.code == 4
    await second.start()
    await until(lambda: second.report().events[-1].seq > last_seq)
    retry = next(e for e in second.report().events if e.seq == last_seq + 1)
    assert retry.reason is Reason.RETRY
    # Still in the loop: the next crash goes straight back to it.
    await until(lambda: moves(second)[-1] == ("starting", "crash_loop", "crash"))


async def test_a_program_removed_while_no_agent_ran_is_stopped(
    supervisors: Supervisors, tmp_path: Path
) -> None:
    first = await supervisors.started(game())
    running = await state_is(first, ProgramState.RUNNING)
    await first.close()
    # The set on disk no longer has it (the agent died between saving the set and
    # stopping the program): its record, with the spec it runs with, is left.
    path = tmp_path / "state" / "programs" / "state.json"
    saved = json.loads(path.read_text())
    saved["programs"] = {"revision": 2, "programs": []}
    path.write_text(json.dumps(saved))
    second = supervisors.new()
    assert second.revision == 2
    await second.start()
    await until(lambda: not second.report().statuses)
    assert ("stopping", "stopped", "removed") in moves(second)
    assert running.pid is not None and not alive(running.pid)
