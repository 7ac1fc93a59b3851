"""``program_logs`` and ``program_send``: a supervised program's console, read and typed
into through the agent's supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from wcms.agent.actions.base import Action, ActionContext, ActionOutcome, payload_of
from wcms.agent.errors import ActionFailed
from wcms.protocol import RunEnvelope, RunResult, RunState
from wcms.protocol.actions import ProgramLogsPayload, ProgramSendPayload

# A followed console's run ends once it streamed this much (the server keeps 64 KiB of a
# run's output); the follower starts the next run at once.
FOLLOW_LIMIT_CHARS = 48 * 1024
# The most console lines a follower gets each second.
LINES_PER_S = 500


class Following(Protocol):
    """New console lines; ``offset`` is where the line after the last one given starts."""

    offset: int

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class Consoles(Protocol):
    """What these actions need of the supervisor."""

    def console(self, name: str, lines: int) -> list[str]: ...

    def follow(self, name: str, offset: int | None = None) -> Following: ...

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
        if payload.offset is not None:
            text = ""  # a follower going on: it has the lines before its offset
        ctx.progress.output(text)
        followed = [text]
        follower = self._consoles.follow(payload.name, payload.offset)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(payload.follow_s, envelope.timeout_s)):
                await self._follow(follower, ctx, followed)
        state = RunState.CANCELLED if ctx.cancelled.is_set() else RunState.SUCCEEDED
        result = RunResult(exit_code=0, stdout="".join(followed), data={"offset": follower.offset})
        return ActionOutcome(state, result)

    async def _follow(self, follower: Following, ctx: ActionContext, followed: list[str]) -> None:
        """Stream new lines until cancelled or FOLLOW_LIMIT_CHARS went out, at most
        ``LINES_PER_S`` a second: past that, a marker says how many were left out, so a
        server spamming its console cannot flood the WCMS server."""
        lines = aiter(follower)
        limit = RateLimit(LINES_PER_S, clock=time.monotonic)
        size = sum(map(len, followed))
        cancelled = asyncio.create_task(ctx.cancelled.wait())
        line_task: asyncio.Future[str] | None = None
        try:
            while size < FOLLOW_LIMIT_CHARS:
                line_task = asyncio.ensure_future(anext(lines))
                await asyncio.wait({line_task, cancelled}, return_when=asyncio.FIRST_COMPLETED)
                if not line_task.done():
                    return
                for text in limit.admit(line_task.result()):
                    text = text if text.endswith("\n") else text + "\n"
                    followed.append(text)
                    size += len(text)
                    ctx.progress.output(text)
        except StopAsyncIteration:
            return
        finally:
            cancelled.cancel()
            if line_task is not None and not line_task.done():
                line_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await line_task
            await follower.aclose()


class RateLimit:
    """At most ``per_s`` lines in each second; the lines over it are counted and a
    marker line replaces them when the next second lets a line through."""

    def __init__(self, per_s: int, *, clock: Callable[[], float]) -> None:
        self._per_s = per_s
        self._clock = clock
        self._second = -1
        self._count = 0
        self._skipped = 0

    def admit(self, line: str) -> list[str]:
        second = int(self._clock())
        if second != self._second:
            self._second, self._count = second, 0
        if self._count >= self._per_s:
            self._skipped += 1
            return []
        self._count += 1
        if not self._skipped:
            return [line]
        marker = f"[... {self._skipped} lines left out: more than {self._per_s} a second ...]"
        self._skipped = 0
        return [marker, line]


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
