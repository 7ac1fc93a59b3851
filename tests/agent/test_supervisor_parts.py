"""Parts of the supervisor on their own: the console log, exit classification and
backoff, the pace of the watch, a program's priority."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wcms.agent.platform.linux import LinuxPlatform
from wcms.agent.supervisor import restarts
from wcms.agent.supervisor.console import KEEP_BYTES, ConsoleLog
from wcms.agent.supervisor.meter import Pace
from wcms.agent.supervisor.store import MAX_EVENTS, ProgramRecord, StateFile, SupervisorState
from wcms.protocol.programs import (
    Backoff,
    ProgramSpec,
    ProgramState,
    ProgramTransition,
    Reason,
    RestartPolicy,
)


def console_log(path: Path) -> ConsoleLog:
    return ConsoleLog(path, decode=lambda data: data.decode("utf-8", "replace"))


def test_the_console_log_keeps_its_last_mebibyte_past_four(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(b"".join(b"line %07d\n" % i for i in range(500_000)))  # 6 MB
    assert path.stat().st_size > 4 * 1024 * 1024
    # The program's own descriptor, opened to append as the supervisor opens it.
    program = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        log = console_log(path)
        assert log.cap()
        assert path.stat().st_size <= KEEP_BYTES
        os.write(program, b"after the cut\n")
    finally:
        os.close(program)
    data = path.read_bytes()
    assert data.startswith(b"line ") and b"\x00" not in data
    assert log.tail(2) == ["line 0499999", "after the cut"]
    assert not log.cap()  # small now


def test_the_tail_reads_back_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_text("".join(f"{i:05d} {'x' * 200}\n" for i in range(2000)))
    lines = console_log(path).tail(600)
    assert len(lines) == 600
    assert lines[0].startswith("01400 ") and lines[-1].startswith("01999 ")
    assert console_log(tmp_path / "missing.log").tail(5) == []


def spec(**fields: object) -> ProgramSpec:
    return ProgramSpec(name="game", command=["game"], **fields)


@pytest.mark.parametrize(
    ("fields", "status", "tail", "found_dead", "reason"),
    [
        ({}, 0, ["bye"], False, Reason.EXITED),
        ({"stop_line": "Server stopped"}, 0, ["Server stopped"], False, Reason.IN_GAME_STOP),
        ({"stop_line": "Server stopped"}, 1, ["Server stopped"], False, Reason.CRASH),
        ({"clean_exit_is_stop": True}, 0, [], False, Reason.IN_GAME_STOP),
        ({}, -9, [], False, Reason.OOM),
        ({}, -11, [], False, Reason.CRASH),
        ({}, 139, [], False, Reason.CRASH),
        ({}, None, [], True, Reason.AGENT_STOPPED),
        ({}, None, [], False, Reason.CRASH),
    ],
)
def test_an_exit_is_classified(
    fields: dict[str, object],
    status: int | None,
    tail: list[str],
    found_dead: bool,
    reason: Reason,
) -> None:
    found = restarts.classify(
        spec(**fields), restarts.exit_status(status), tail=tail, found_dead=found_dead
    )
    assert found is reason


@pytest.mark.parametrize(
    ("policy", "reason", "again"),
    [
        (RestartPolicy.ON_CRASH, Reason.CRASH, True),
        (RestartPolicy.ON_CRASH, Reason.START_FAILED, True),
        (RestartPolicy.ON_CRASH, Reason.EXITED, False),
        (RestartPolicy.ALWAYS, Reason.EXITED, True),
        (RestartPolicy.ALWAYS, Reason.IN_GAME_STOP, False),
        (RestartPolicy.NEVER, Reason.CRASH, False),
    ],
)
def test_the_restart_policy(policy: RestartPolicy, reason: Reason, again: bool) -> None:
    assert restarts.restarts(policy, reason) is again


def test_the_backoff_doubles_to_its_ceiling_then_loops() -> None:
    backoff = Backoff(initial_s=10, max_s=600, loop_crashes=5, loop_window_s=600, healthy_s=600)
    record = ProgramRecord()
    delays = []
    states = []
    for i in range(6):
        now = 1000.0 + i
        states.append(restarts.count_crash(record, backoff, now=now))
        delays.append((record.next_start_at or 0) - now)
    assert delays == [10, 20, 40, 80, 600, 600]
    assert states == [ProgramState.BACKOFF] * 4 + [ProgramState.CRASH_LOOP] * 2
    # Crashes older than the window do not count.
    assert restarts.count_crash(record, backoff, now=5000.0) is ProgramState.BACKOFF
    assert record.crashes == [5000.0]
    # And uptime forgives them.
    assert not restarts.forgive(record, backoff, uptime_s=599)
    assert restarts.forgive(record, backoff, uptime_s=600)
    assert record.crashes == [] and record.backoff_step == 0


def test_the_watch_slows_down_when_the_machine_is_busy() -> None:
    pace = Pace()
    assert pace.interval(10) == 2.0
    assert pace.interval(95) == 10.0


def test_the_state_file_keeps_the_last_events(tmp_path: Path) -> None:
    state = SupervisorState()
    for seq in range(1, MAX_EVENTS + 11):
        state.add_event(
            ProgramTransition(
                seq=seq,
                name="game",
                at="2026-01-01T00:00:00Z",
                from_state=ProgramState.STOPPED,
                to_state=ProgramState.STARTING,
                reason=Reason.USER_START,
            )
        )
    file = StateFile(tmp_path / "programs")
    file.save(state)
    loaded = file.load()
    assert len(loaded.events) == MAX_EVENTS and loaded.events[0].seq == 11
    (tmp_path / "programs" / "state.json").write_text("{not json")
    assert file.load().events == []


def test_a_program_never_gets_more_than_normal_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(os, "setpriority", lambda *args: calls.append(args))
    platform = LinuxPlatform(setpriv=None)
    platform._normal_niceness = -5  # an agent started at a raised priority
    platform._restore_program_priority(4321)
    platform._normal_niceness = 3
    platform._restore_program_priority(4321)
    assert calls == [(os.PRIO_PROCESS, 4321, 0), (os.PRIO_PROCESS, 4321, 3)]


@pytest.mark.anyio
async def test_a_follower_going_on_from_an_offset_misses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    log = console_log(tmp_path / "console.log")
    log.path.write_bytes(b"before\n")
    first = log.follow(poll_s=0.01)
    with log.path.open("ab") as file:
        file.write(b"one\ntwo\n")
    assert [await anext(first), await anext(first)] == ["one", "two"]
    await first.aclose()
    with log.path.open("ab") as file:  # written while nobody follows
        file.write(b"three\nfou")
    second = log.follow(offset=first.offset, poll_s=0.01)
    assert await anext(second) == "three"
    with log.path.open("ab") as file:
        file.write(b"r\n")
    assert await anext(second) == "four"
    assert second.offset == log.size()
    await second.aclose()
