"""The extension point for command types: one :class:`Action` per type."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from wcms.agent.errors import PayloadInvalid
from wcms.agent.files import FileStore
from wcms.agent.progress import Progress
from wcms.protocol import RunEnvelope, RunResult, RunState, parse_payload
from wcms.protocol.commands import Payload

P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class ActionOutcome:
    """How a run ended: the final state the agent reports, and its result."""

    state: RunState
    result: RunResult

    @classmethod
    def failed(cls, error: str, *, duration_ms: int | None = None) -> ActionOutcome:
        return cls(RunState.FAILED, RunResult(error=error, duration_ms=duration_ms))

    @classmethod
    def succeeded(cls, summary: str, *, data: dict[str, Any] | None = None) -> ActionOutcome:
        """Success with a human summary (as stdout) and structured ``data``."""
        text = summary if summary.endswith("\n") else summary + "\n"
        return cls(RunState.SUCCEEDED, RunResult(exit_code=0, stdout=text, data=data))


def _unrecorded(pid: int, started: float) -> None:
    """Where no run manager records processes (an action run on its own)."""


@dataclass(frozen=True)
class ActionContext:
    """What the run manager gives one run besides its envelope."""

    # Set when the server cancels the run; an action that can stop early should
    # watch it and end with state ``cancelled``.
    cancelled: asyncio.Event
    # Live output and progress, streamed to the server while the run goes on.
    progress: Progress = field(default_factory=Progress)
    # Files on the server: documents to print, screenshots.
    files: FileStore = field(default_factory=FileStore)
    # An action that starts a process which could outlive the agent (a shell and what
    # it starts) calls this with its pid and start time right after starting it: the
    # run manager journals them, so that a restarted agent can find and kill what is
    # left of a run the previous one did not see end.
    on_process: Callable[[int, float], None] = _unrecorded


@dataclass(frozen=True)
class ActionSettings:
    """The agent's settings that actions act by."""

    # This agent's machine id (a wake run delivered to its own target is a no-op).
    machine_id: str = ""
    # User accounts and package files are installed under this root: "/" for real,
    # a throwaway directory for tests or to prepare a disk image.
    system_root: Path = Path("/")
    # download_file may write only under these directories; empty: anywhere but the
    # operating system's own directories.
    download_dirs: tuple[Path, ...] = ()
    max_download_bytes: int = 2 * 1024**3
    # The X display to capture when a screenshot names none (None: $DISPLAY or ":0").
    display: str | None = None
    # Extra regular expressions an execute command line must not match.
    blocked_commands: tuple[str, ...] = ()


class Action(ABC):
    """Carries out one command type."""

    @abstractmethod
    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        """Carry out ``envelope`` and say how it ended.

        Called at most once per run attempt, after the run was journalled. It should
        stop by ``envelope.timeout_s`` (ending ``timed_out``) and soon after
        ``ctx.cancelled`` is set (ending ``cancelled``); the run manager gives it a
        grace period and then cancels the task. A payload that does not validate
        raises :class:`PayloadInvalid` (see :func:`payload_of`); any other failure
        should be an outcome with state ``failed`` and an ``error`` in words.
        """


def payload_of(envelope: RunEnvelope, model: type[P]) -> P:
    """The envelope's payload validated as ``model``; raises PayloadInvalid."""
    try:
        payload = parse_payload(envelope.type, envelope.payload)
    except KeyError as exc:
        raise PayloadInvalid(f"command type {envelope.type!r} has no payload schema") from exc
    except ValidationError as exc:
        raise PayloadInvalid(describe_invalid(envelope.type, exc)) from exc
    if not isinstance(payload, model):
        raise PayloadInvalid(f"command type {envelope.type!r} has no {model.__name__}")
    return payload


def describe_invalid(command_type: str, error: ValidationError) -> str:
    """Name each invalid field and why, without echoing values (they may be secret)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "payload"
        problems.append(f"field '{where}': {item['msg']}")
    return f"invalid payload for {command_type!r}: " + "; ".join(problems)
