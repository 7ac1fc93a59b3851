"""Helpers for the supervisor tests: fast supervisors over real state directories,
specs of the stand-in game (``game.py``), and waiting for states and events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from wcms.agent.platform import current_platform
from wcms.agent.supervisor import Pace, Supervisor
from wcms.protocol.programs import (
    Backoff,
    ProgramSet,
    ProgramSpec,
    ProgramState,
    ProgramStatus,
    ProgramTransition,
    Reason,
    StopSequence,
)

GAME = str(Path(__file__).with_name("game.py"))
FAST = Pace(watch_s=0.05, busy_watch_s=0.05, scan_s=0.02, measure_s=0.1)


def game(*args: str, name: str = "game", **fields: Any) -> ProgramSpec:
    """A spec of the stand-in game: desired running, ready on ``ready``, stopped with
    ``stop`` on stdin, short timeouts and backoff."""
    values: dict[str, Any] = {
        "name": name,
        "command": [sys.executable, GAME, *args],
        "desired": "running",
        "ready_line": "^ready$",
        "stop_line": "Server stopped",
        "stop": StopSequence(command="stop", timeout_s=1.0, signal_timeout_s=1.0),
        "backoff": Backoff(
            initial_s=0.2, max_s=0.8, loop_crashes=5, loop_window_s=60, healthy_s=60
        ),
    }
    values.update(fields)
    return ProgramSpec(**values)


class Supervisors:
    """Makes supervisors and, at the end of a test, closes them and kills every
    process group their programs had (no test leaves a game behind)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.made: list[Supervisor] = []
        self.changes = 0
        self.pids: set[int] = set()

    def new(self) -> Supervisor:
        supervisor = Supervisor(
            self.state_dir, platform=current_platform(), on_change=self._changed, pace=FAST
        )
        self.made.append(supervisor)
        return supervisor

    async def started(self, *specs: ProgramSpec, revision: int = 1) -> Supervisor:
        supervisor = self.new()
        await supervisor.start()
        if specs:
            supervisor.apply(ProgramSet(revision=revision, programs=list(specs)))
        return supervisor

    def _changed(self) -> None:
        self.changes += 1
        for supervisor in self.made:
            for status in supervisor.report().statuses:
                if status.pid:
                    self.pids.add(status.pid)

    async def cleanup(self) -> None:
        for supervisor in self.made:
            await supervisor.close()
        for pid in self.pids:
            kill_group(pid)
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
                child.wait(2)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def status(supervisor: Supervisor, name: str = "game") -> ProgramStatus:
    for found in supervisor.report().statuses:
        if found.name == name:
            return found
    raise AssertionError(f"no status for {name}")


def events(supervisor: Supervisor, name: str = "game") -> list[ProgramTransition]:
    return [event for event in supervisor.report().events if event.name == name]


def moves(supervisor: Supervisor, name: str = "game") -> list[tuple[str, str, str]]:
    """The transitions as (from, to, reason) strings."""
    return [
        (e.from_state.value, e.to_state.value, e.reason.value) for e in events(supervisor, name)
    ]


async def until(check: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def state_is(
    supervisor: Supervisor, state: ProgramState, name: str = "game", timeout: float = 5.0
) -> ProgramStatus:
    try:
        await until(lambda: status(supervisor, name).state is state, timeout)
    except TimeoutError:
        raise AssertionError(
            f"{name} is {status(supervisor, name).state}, not {state}: {moves(supervisor, name)}"
        ) from None
    return status(supervisor, name)


async def event_seen(
    supervisor: Supervisor,
    reason: Reason,
    to_state: ProgramState | None = None,
    name: str = "game",
    timeout: float = 5.0,
) -> ProgramTransition:
    def found() -> ProgramTransition | None:
        for event in events(supervisor, name):
            if event.reason is reason and to_state in (None, event.to_state):
                return event
        return None

    try:
        await until(lambda: found() is not None, timeout)
    except TimeoutError:
        raise AssertionError(f"no {reason} event: {moves(supervisor, name)}") from None
    event = found()
    assert event is not None
    return event


def console_text(supervisor: Supervisor, name: str = "game") -> str:
    return "\n".join(supervisor.console(name, 500))


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
