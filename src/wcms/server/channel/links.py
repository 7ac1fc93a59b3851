"""The two kinds of agent link: a WebSocket, and an HTTP long-poll session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from wcms.protocol import RunCancelFrame, RunEnvelope, RunFrame
from wcms.protocol.messages import dump
from wcms.server.services.links import AgentLink

log = logging.getLogger("wcms.channel")


class WsLink(AgentLink):
    """An agent on a WebSocket: the server pushes runs the moment they exist."""

    transport = "ws"

    def __init__(self, websocket: WebSocket, machine_id: str, session_id: str) -> None:
        super().__init__(machine_id, session_id)
        self.websocket = websocket
        # Runs are pushed only after the welcome frame; until then they wait in the
        # database and are picked up by the delivery that follows the welcome.
        self.ready = False
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

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        if self.websocket.application_state == WebSocketState.CONNECTED:
            # The agent may be gone already: closing then has nothing left to do.
            with suppress(RuntimeError, OSError, WebSocketDisconnect):
                await self.websocket.close(code=code, reason=reason)


class HttpLink(AgentLink):
    """An agent that long-polls: runs wait in the database until its next poll."""

    transport = "http"

    def __init__(self, machine_id: str, session_id: str) -> None:
        super().__init__(machine_id, session_id)
        self._wake = asyncio.Event()
        self._cancels: list[int] = []

    async def offer(self, runs: Sequence[RunEnvelope]) -> bool:
        self._wake.set()
        return False

    async def cancel(self, run_id: int) -> None:
        self._cancels.append(run_id)
        self._wake.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        self._wake.set()

    def take_cancels(self) -> list[int]:
        cancels, self._cancels = self._cancels, []
        return cancels

    async def wait(self, timeout: float) -> None:
        """Sleep until something arrives for this agent or ``timeout`` passes."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        self._wake.clear()
