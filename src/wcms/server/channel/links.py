"""The two kinds of agent link: a WebSocket, and an HTTP long-poll session."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from contextlib import suppress
from typing import Any

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from wcms.protocol import PROGRAMS_SINCE_VERSION, RunCancelFrame, RunEnvelope, RunFrame
from wcms.protocol.messages import dump
from wcms.protocol.programs import ProgramSet, ProgramsFrame
from wcms.server.services.links import AgentLink

log = logging.getLogger("wcms.channel")

# After a poll is answered, how long the agent may take to send its next request (a
# poller's next poll, a heartbeat over a slow network) before its silence counts.
POLL_GAP_S = 5.0


class WsLink(AgentLink):
    """An agent on a WebSocket: the server pushes runs the moment they exist."""

    transport = "ws"

    def __init__(self, websocket: WebSocket, machine_id: str, session_id: str) -> None:
        super().__init__(machine_id, session_id)
        self.websocket = websocket
        # Runs are pushed only after the welcome frame; until then they wait in the
        # database and are picked up by the delivery that follows the welcome.
        self.ready = False
        # What the agent's hello announced: program sets go only to version 3 and later.
        self.protocol_version = 1
        self._send_lock = asyncio.Lock()

    @property
    def pushes(self) -> bool:
        return self.ready and not self.closed

    async def send(self, frame: BaseModel) -> bool:
        if self.closed:
            return False
        try:
            async with self._send_lock:
                await self.websocket.send_text(dump(frame))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.debug("send to %s failed: %s", self.machine_id, exc)
            self.closed = True
            return False
        return True

    async def offer(self, runs: Sequence[RunEnvelope]) -> bool:
        if not self.ready:
            return False
        for run in runs:
            if not await self.send(RunFrame(run=run)):
                return False
        return True

    async def cancel(self, run_id: int) -> None:
        await self.send(RunCancelFrame(run_id=run_id))

    @property
    def takes_programs(self) -> bool:
        return self.pushes and self.protocol_version >= PROGRAMS_SINCE_VERSION

    async def offer_programs(self, programs: ProgramSet) -> bool:
        return self.takes_programs and await self.send(ProgramsFrame(set=programs))

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        if self.websocket.application_state == WebSocketState.CONNECTED:
            # The agent may be gone already: closing then has nothing left to do.
            with suppress(RuntimeError, OSError, WebSocketDisconnect):
                await self.websocket.close(code=code, reason=reason)


class HttpLink(AgentLink):
    """An agent that long-polls: runs wait in the database until its next poll.

    While a poll waits, the agent is waiting on the server, so the link is not silent;
    whether the client hangs up meanwhile is watched instead (see :meth:`wait`).
    """

    transport = "http"

    def __init__(self, machine_id: str, session_id: str) -> None:
        super().__init__(machine_id, session_id)
        self._wake = asyncio.Event()
        self._cancels: list[int] = []
        self._polls = 0
        self._answered_at = float("-inf")

    @property
    def polling(self) -> bool:
        """Whether a poll of this link is waiting right now."""
        return self._polls > 0

    def silent(self, now: float, limit: float) -> bool:
        if self._polls:
            return False
        if now - self._answered_at <= POLL_GAP_S:
            return False  # a poll just ended: the next one is on its way
        return now - self.last_message_at > limit + POLL_GAP_S

    async def offer(self, runs: Sequence[RunEnvelope]) -> bool:
        self._wake.set()
        return False

    async def cancel(self, run_id: int) -> None:
        self._cancels.append(run_id)
        self._wake.set()

    def programs_changed(self) -> None:
        """The machine's programs changed: a waiting poll answers the new set."""
        self._wake.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        self._wake.set()

    def take_cancels(self) -> list[int]:
        cancels, self._cancels = self._cancels, []
        return cancels

    async def wait(self, timeout: float, *, hangup: Awaitable[Any] | None = None) -> bool:
        """Sleep until something arrives for this agent or ``timeout`` passes.

        ``hangup`` completes when the client hangs up; True if it did so first.
        """
        woken = asyncio.ensure_future(self._wake.wait())
        waiters: set[asyncio.Future[Any]] = {woken}
        gone = None if hangup is None else asyncio.ensure_future(hangup)
        if gone is not None:
            waiters.add(gone)
        self._polls += 1
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._polls -= 1
            self._answered_at = time.monotonic()
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if woken in done:
            self._wake.clear()
        if gone is None or gone not in done:
            return False
        if gone.exception() is not None:
            log.debug("watching the poll of %s failed: %r", self.machine_id, gone.exception())
            return False
        return True
