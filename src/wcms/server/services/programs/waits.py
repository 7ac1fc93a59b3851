"""Waiting for a program to reach the state an administrator asked for.

The state is the one its agent reports, so a wait ends on a report (or, another
replica holding the agent, on a re-read). A start also ends once there is no hope: the
program ended after the request (its start failed, it crashed) or it loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from wcms.protocol.program_admin import ProgramOut
from wcms.protocol.programs import ProgramState

_GAVE_UP = frozenset({ProgramState.STOPPED, ProgramState.BACKOFF})


@dataclass(frozen=True, slots=True)
class Goal:
    """The state asked for, since when, and for a restart the request to see applied."""

    state: ProgramState
    since: datetime
    restart_seq: int | None = None

    @classmethod
    def of(cls, action: str, program: ProgramOut, *, since: datetime) -> Goal:
        """What ``action`` (start, stop or restart) of ``program`` waits for."""
        if action == "stop":
            return cls(ProgramState.STOPPED, since)
        return cls(
            ProgramState.RUNNING, since, program.restart_seq if action == "restart" else None
        )

    def reached(self, program: ProgramOut) -> bool:
        if program.state != self.state:
            return False
        return self.restart_seq is None or (program.restart_seq_applied or 0) >= self.restart_seq

    def settled(self, program: ProgramOut) -> bool:
        """Reached, or never going to be without another request."""
        if self.reached(program):
            return True
        if self.state != ProgramState.RUNNING:
            return False
        if program.state == ProgramState.CRASH_LOOP:
            return True
        ended = program.last_exit
        return (
            program.state in _GAVE_UP
            and ended is not None
            and ended.at is not None
            and ended.at >= self.since
        )


class Waiters:
    """The waits in progress, by program: each is woken by news of its program."""

    def __init__(self) -> None:
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, machine_id: str, name: str) -> Iterator[asyncio.Event]:
        """An event set on news of the program; registered before the caller's first
        read, so news between a read and the wait is not missed."""
        key = (machine_id, name)
        event = asyncio.Event()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]

    def notify(self, machine_id: str, name: str) -> None:
        for event in self._waiters.get((machine_id, name), ()):
            event.set()

    def __len__(self) -> int:
        return sum(len(events) for events in self._waiters.values())
