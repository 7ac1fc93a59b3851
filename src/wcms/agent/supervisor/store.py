"""What the supervisor keeps on disk: ``programs/state.json``.

It holds the set the server last sent, each program's runtime state (its process, its
crash count, its backoff) and the events the server has not acknowledged, so that an
agent restarted (or upgraded) picks up where the last one left off: it re-adopts the
programs still running, keeps counting their crashes, and sends the events again. It is
written whole, atomically, when something in it changes, never on a timer: disk I/O
on a game host matters. It holds the programs' secret variables, so only the owner may
read it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wcms.protocol.programs import (
    ProgramExit,
    ProgramSet,
    ProgramSpec,
    ProgramState,
    ProgramTransition,
)

log = logging.getLogger(__name__)

# Unacknowledged events kept; past this the oldest go (a server away for days).
MAX_EVENTS = 500


class ProgramRecord(BaseModel):
    """One program's runtime state, as persisted."""

    model_config = ConfigDict(extra="ignore")

    state: ProgramState = ProgramState.STOPPED
    # Its process while it runs: the pid and when it started (seconds since the epoch,
    # as the system records it), which tells it from a later process with that pid.
    pid: int | None = None
    create_time: float | None = None
    started_at: datetime | None = None
    restarts: int = 0
    # When it crashed (seconds since the epoch), within the backoff window.
    crashes: list[float] = Field(default_factory=list)
    backoff_step: int = 0
    # When the next start is due (seconds since the epoch), in backoff or crash_loop.
    next_start_at: float | None = None
    last_exit: ProgramExit | None = None
    restart_seq: int = 0
    # Stays stopped although the server's set says running: it stopped itself (an
    # in-game stop, or an exit its restart policy does not restart), until the server
    # says stopped, or asks for a restart.
    held: bool = False
    error: str | None = None
    # The spec its process was started with: a changed spec applies at the next start,
    # and a program removed while no agent ran is still stopped as it was started.
    run_spec: ProgramSpec | None = None


class SupervisorState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    programs: ProgramSet = Field(default_factory=lambda: ProgramSet(revision=0))
    records: dict[str, ProgramRecord] = Field(default_factory=dict)
    next_seq: int = 1
    events: list[ProgramTransition] = Field(default_factory=list)

    def add_event(self, event: ProgramTransition) -> None:
        self.events.append(event)
        del self.events[:-MAX_EVENTS]


class StateFile:
    """``state.json`` in the supervisor's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"

    def load(self) -> SupervisorState:
        """The state last saved; an empty one if there is none, or if it cannot be read
        (logged: the programs are then found again from the server's next set)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return SupervisorState()
        except OSError as exc:
            log.error("cannot read %s (%s): starting with no programs", self.path, exc)
            return SupervisorState()
        try:
            return SupervisorState.model_validate_json(data)
        except ValidationError as exc:
            log.error("%s is damaged (%s): starting with no programs", self.path, exc)
            return SupervisorState()

    def save(self, state: SupervisorState) -> None:
        """Write ``state`` all or nothing; a failure is logged, and the next change
        tries again (supervision goes on from memory meanwhile)."""
        data = state.model_dump_json().encode("utf-8")
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            log.error("cannot write %s: %s", self.path, exc)
