"""What a supervised program and its supervisor share: the change a program reports,
the services it needs of the supervisor, and text made fit for the protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wcms.agent.platform.base import Platform
from wcms.agent.supervisor.meter import Pace
from wcms.protocol.bounds import scrub
from wcms.protocol.programs import ProgramExit, ProgramState, Reason

ACTIVE = (ProgramState.STARTING, ProgramState.RUNNING)
WAITING = (ProgramState.BACKOFF, ProgramState.CRASH_LOOP)
# The protocol's bound on a detail or an error.
TEXT_MAX = 2000


@dataclass(frozen=True)
class Change:
    from_state: ProgramState
    to_state: ProgramState
    reason: Reason
    detail: str | None = None
    exit: ProgramExit | None = None


class Host(Protocol):
    """What a program needs of its supervisor."""

    platform: Platform
    pace: Pace

    def transition(self, name: str, change: Change) -> None:
        """Number and keep the change, persist, tell the connection."""

    def save(self) -> None: ...

    def changed(self) -> None: ...

    def watch_s(self) -> float: ...

    def forget(self, name: str) -> None: ...


def clip(text: str | None) -> str | None:
    """``text`` as the protocol stores it: no NUL, at most ``TEXT_MAX`` characters
    (console output is whatever the game wrote)."""
    if text is None:
        return None
    text = scrub(text)
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…"
