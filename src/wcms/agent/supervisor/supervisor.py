"""The supervisor: the agent's programs, as the server's set says they should be.

The server sends the whole set (``apply``); each program then has a task of its own
that starts, watches, restarts and stops it (:mod:`.program`). The supervisor keeps
their runtime state and their unacknowledged events in ``programs/state.json``, and
tells the connection (``on_change``) when there is news to report. Closing it leaves
the programs running: a game server must outlive an agent restart or upgrade, and the
next agent process adopts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from wcms.agent.platform.base import Platform
from wcms.agent.supervisor.console import Follower
from wcms.agent.supervisor.host import Change
from wcms.agent.supervisor.meter import Pace, machine_cpu_percent
from wcms.agent.supervisor.program import Program
from wcms.agent.supervisor.store import ProgramRecord, StateFile
from wcms.protocol.programs import ProgramReport, ProgramSet, ProgramSpec, ProgramTransition

log = logging.getLogger(__name__)

# The machine's CPU use is sampled at most this often, whatever the number of programs.
_LOAD_SAMPLE_S = 1.0


class Supervisor:
    def __init__(
        self,
        state_dir: Path,
        *,
        platform: Platform,
        on_change: Callable[[], None] | None = None,
        pace: Pace | None = None,
    ) -> None:
        """``state_dir``: the agent's state directory (``programs/`` is made in it).
        ``pace``: how often it looks (tests make it faster)."""
        self.platform = platform
        self.pace = pace or Pace()
        self._directory = state_dir / "programs"
        self._file = StateFile(self._directory)
        self._state = self._file.load()
        self._on_change = on_change
        self._programs: dict[str, Program] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self._load = 0.0
        self._load_at: float | None = None
        for spec in self._state.programs.programs:
            self._add(spec)
        # A program removed from the set while it ran and no agent watched: still
        # stopped and removed, with the spec it was started with.
        for name, record in self._state.records.items():
            if name not in self._programs and record.run_spec is not None:
                self._add(record.run_spec).remove()

    @property
    def revision(self) -> int:
        return self._state.programs.revision

    async def start(self) -> None:
        """Adopt the programs still running, then supervise them all."""
        if self._running:
            return
        self._running = True
        self._sample_load()
        for program in self._programs.values():
            self._spawn(program)

    async def close(self) -> None:
        """Stop watching; the programs run on, and are adopted at the next start."""
        self._running = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for program in self._programs.values():
            await program.close()
        self.save()

    def apply(self, programs: ProgramSet) -> None:
        """The server's new set: kept at once; each program's task carries it out."""
        self._state.programs = programs
        wanted = {spec.name: spec for spec in programs.programs}
        for name, program in list(self._programs.items()):
            if name not in wanted:
                program.remove()
        for name, spec in wanted.items():
            known = self._programs.get(name)
            if known is None:
                self._spawn(self._add(spec))
            else:
                known.update(spec)
        self.save()
        self.changed()

    def report(self) -> ProgramReport:
        statuses = [self._programs[name].status() for name in sorted(self._programs)]
        return ProgramReport(
            revision=self.revision, statuses=statuses, events=list(self._state.events)
        )

    def acknowledge(self, seq: int) -> None:
        """The server stored the events up to ``seq``."""
        events = self._state.events
        kept = [event for event in events if event.seq > seq]
        if len(kept) != len(events):
            self._state.events = kept
            self.save()

    def console(self, name: str, lines: int) -> list[str]:
        return self._program(name).log.tail(lines)

    def follow(self, name: str, offset: int | None = None) -> Follower:
        """New console lines from ``offset`` (a follower's ``offset``; None: now)."""
        return self._program(name).log.follow(offset=offset, poll_s=self.pace.scan_s)

    async def send(self, name: str, text: str) -> str:
        """A line to the program's console (its plugin's, else its stdin); the answer.
        Raises ``ConsoleUnavailable`` when it cannot go."""
        return await self._program(name).send(text)

    # What the programs need of it (program.Host).

    def transition(self, name: str, change: Change) -> None:
        state = self._state
        event = ProgramTransition(
            seq=state.next_seq,
            name=name,
            at=datetime.now(UTC),
            from_state=change.from_state,
            to_state=change.to_state,
            reason=change.reason,
            detail=change.detail,
            exit=change.exit,
        )
        state.next_seq += 1
        state.add_event(event)
        self.save()
        self.changed()

    def save(self) -> None:
        self._file.save(self._state)

    def changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("the programs' change callback failed")

    def watch_s(self) -> float:
        self._sample_load()
        return self.pace.interval(self._load)

    def forget(self, name: str) -> None:
        self._programs.pop(name, None)
        self._tasks.pop(name, None)
        self._state.records.pop(name, None)
        self.save()
        self.changed()

    # Helpers.

    def _add(self, spec: ProgramSpec) -> Program:
        record = self._state.records.setdefault(spec.name, ProgramRecord())
        program = Program(spec, record, host=self, directory=self._directory / spec.name)
        self._programs[spec.name] = program
        return program

    def _spawn(self, program: Program) -> None:
        if not self._running or program.name in self._tasks:
            return
        task = asyncio.create_task(program.run(), name=f"program {program.name}")
        self._tasks[program.name] = task

    def _program(self, name: str) -> Program:
        program = self._programs.get(name)
        if program is None:
            raise LookupError(f"no program named {name!r} on this machine")
        return program

    def _sample_load(self) -> None:
        now = time.monotonic()
        if self._load_at is None or now - self._load_at >= _LOAD_SAMPLE_S:
            self._load_at = now
            self._load = machine_cpu_percent()
