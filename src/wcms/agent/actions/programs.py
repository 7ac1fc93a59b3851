"""``program_logs`` and ``program_send``: a supervised program's console, read and typed
into through the agent's supervisor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from wcms.agent.actions.base import Action, ActionContext, ActionOutcome, payload_of
from wcms.agent.errors import ActionFailed
from wcms.protocol import RunEnvelope, RunResult, RunState
from wcms.protocol.actions import ProgramLogsPayload, ProgramSendPayload

# A followed console's run ends once it streamed this much (the server keeps 64 KiB of a
# run's output); the follower starts the next run at once.
FOLLOW_LIMIT_CHARS = 48 * 1024


class Consoles(Protocol):
    """What these actions need of the supervisor."""

    def console(self, name: str, lines: int) -> list[str]: ...

    def follow(self, name: str) -> AsyncIterator[str]: ...

    async def send(self, name: str, text: str) -> str: ...


class ProgramLogsAction(Action):
    """The last lines of the console as the result; with ``follow_s``, new lines go out
    as live output until the time is up or the run is cancelled (nothing is sent while
    nobody follows)."""

    def __init__(self, consoles: Consoles) -> None:
        self._consoles = consoles

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, ProgramLogsPayload)
        try:
            lines = self._consoles.console(payload.name, payload.lines)
        except LookupError as exc:
            raise ActionFailed(str(exc.args[0] if exc.args else exc)) from exc
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        if payload.follow_s is None:
            return ActionOutcome(RunState.SUCCEEDED, RunResult(exit_code=0, stdout=text))
        ctx.progress.output(text)
        followed = [text]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(payload.follow_s, envelope.timeout_s)):
                await self._follow(payload.name, ctx, followed)
        state = RunState.CANCELLED if ctx.cancelled.is_set() else RunState.SUCCEEDED
        return ActionOutcome(state, RunResult(exit_code=0, stdout="".join(followed)))

    async def _follow(self, name: str, ctx: ActionContext, followed: list[str]) -> None:
        cancelled = asyncio.create_task(ctx.cancelled.wait())
        try:
            async for line in self._consoles.follow(name):
                if cancelled.done():
                    return
                line = line if line.endswith("\n") else line + "\n"
                followed.append(line)
                ctx.progress.output(line)
                if sum(map(len, followed)) >= FOLLOW_LIMIT_CHARS:
                    return
        finally:
            cancelled.cancel()


class ProgramSendAction(Action):
    """A line to the program's console; the game's answer (RCON, REST) is the output."""

    def __init__(self, consoles: Consoles) -> None:
        self._consoles = consoles

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, ProgramSendPayload)
        try:
            answer = await self._consoles.send(payload.name, payload.text)
        except LookupError as exc:
            raise ActionFailed(str(exc.args[0] if exc.args else exc)) from exc
        except Exception as exc:  # a plugin's or the console's failure, in words
            raise ActionFailed(str(exc) or type(exc).__name__) from exc
        return ActionOutcome(RunState.SUCCEEDED, RunResult(exit_code=0, stdout=answer))
