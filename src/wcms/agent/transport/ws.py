"""The WebSocket channel: ``/api/client/ws``, JSON text frames both ways."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from pydantic import BaseModel, ValidationError

from wcms.agent.client import error_for_code
from wcms.agent.errors import (
    CredentialRevoked,
    DuplicateMachine,
    TransportError,
    UnknownCredential,
    WebSocketUnavailable,
)
from wcms.agent.outbox import RunKey
from wcms.agent.transport import PROGRESS_INTERVAL_S, Channel, ChannelContext, first_to_end
from wcms.protocol import (
    PROGRAMS_SINCE_VERSION,
    PROGRESS_SINCE_VERSION,
    CloseCode,
    ErrorCode,
    ErrorFrame,
    HeartbeatFrame,
    HelloFrame,
    RunAckFrame,
    RunCancelFrame,
    RunFrame,
    RunProgressFrame,
    RunUpdateFrame,
    ServerFrame,
    ShutdownFrame,
    WelcomeFrame,
    server_frame,
)
from wcms.protocol.messages import dump
from wcms.protocol.programs import (
    ProgramAckFrame,
    ProgramReport,
    ProgramReportFrame,
    ProgramsFrame,
)

log = logging.getLogger(__name__)

# WebSocket pings keep proxies from closing an idle connection and notice a dead one.
PING_INTERVAL_S = 20.0
HANDSHAKE_TIMEOUT_S = 30.0
WELCOME_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 1.0
# Handshake answers that mean "this credential or session is refused", not "no
# WebSocket here": they must not make the agent fall back to long-poll.
_REFUSALS = frozenset({401, 403, 409})
# The server answers, but cannot serve now (its database failed): retry with backoff,
# the WebSocket itself works.
_UNAVAILABLE = 503


class WebSocketChannel(Channel):
    name = "ws"

    def __init__(self, ctx: ChannelContext) -> None:
        super().__init__(ctx)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()

    async def serve(self, on_ready: Callable[[], None]) -> None:
        ws = await self._connect()
        self._ws = ws
        try:
            inventory = await asyncio.to_thread(self.ctx.inventory)
            programs = self.ctx.programs
            await self._send(
                HelloFrame(
                    session_id=self.ctx.client.session_id,
                    inventory=inventory,
                    programs_revision=programs.revision if programs else None,
                )
            )
            try:
                welcome = await asyncio.wait_for(self._until_welcome(ws), WELCOME_TIMEOUT_S)
            except TimeoutError as exc:
                raise TransportError("the server did not welcome this agent in time") from exc
            interval = self.ctx.heartbeat_interval or welcome.heartbeat_interval
            log.info("connected over WebSocket as %s", welcome.machine_id)
            on_ready()
            await first_to_end(
                self._receive(ws),
                self._heartbeats(interval),
                self._flush(),
                self._progress(welcome.protocol_version >= PROGRESS_SINCE_VERSION),
                self._program_reports(welcome.protocol_version >= PROGRAMS_SINCE_VERSION, interval),
            )
        finally:
            self._ws = None
            await ws.close()

    async def say_goodbye(self, reason: str) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return
        try:
            for update in self.ctx.outbox.pending():
                await self._send(RunUpdateFrame(update=update))
            await self._send(ShutdownFrame(reason=reason))
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S)
        except (TransportError, TimeoutError) as exc:
            log.debug("goodbye over WebSocket incomplete: %s", exc)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        client = self.ctx.client
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                return await client.session.ws_connect(
                    client.websocket_url,
                    headers=client.headers(),
                    heartbeat=PING_INTERVAL_S,
                    timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in _REFUSALS:
                await self._explain_refusal(exc.status)
            if exc.status == _UNAVAILABLE:
                raise TransportError(f"the server is unavailable: {exc.message}") from exc
            raise WebSocketUnavailable(
                f"WebSocket handshake failed: HTTP {exc.status} {exc.message}"
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect: {exc or type(exc).__name__}") from exc

    async def _explain_refusal(self, status: int) -> None:
        """The handshake answer's body is out of reach; ask over plain HTTP, whose error
        body names the reason (revoked, unknown, duplicate)."""
        if status == 409:
            raise DuplicateMachine("another live agent is connected with this machine id")
        status_report = await asyncio.to_thread(self.ctx.status.collect)
        await self.ctx.client.heartbeat(status_report)
        raise TransportError(f"WebSocket refused with HTTP {status}, though HTTP calls work")

    async def _until_welcome(self, ws: aiohttp.ClientWebSocketResponse) -> WelcomeFrame:
        while True:
            frame = await self._next_frame(ws)
            if isinstance(frame, WelcomeFrame):
                return frame
            self._handle(frame)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            self._handle(await self._next_frame(ws))

    async def _next_frame(self, ws: aiohttp.ClientWebSocketResponse) -> ServerFrame:
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                try:
                    return server_frame(message.data)
                except ValidationError as exc:
                    log.warning("ignoring a frame the agent does not understand: %s", exc)
                    continue
            if message.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            raise _closed(ws, message)

    def _handle(self, frame: ServerFrame) -> None:
        runner, outbox = self.ctx.runner, self.ctx.outbox
        if isinstance(frame, RunFrame):
            runner.submit(frame.run)
        elif isinstance(frame, RunCancelFrame):
            runner.cancel(frame.run_id)
        elif isinstance(frame, RunAckFrame):
            outbox.ack(frame.run_id, frame.attempt, state=frame.state)
        elif isinstance(frame, ProgramsFrame) and self.ctx.programs is not None:
            self.ctx.programs.received(frame.set)
        elif isinstance(frame, ProgramAckFrame) and self.ctx.programs is not None:
            self.ctx.programs.programs.acknowledge(frame.seq)
        elif isinstance(frame, ErrorFrame):
            self._on_error(frame)
        else:
            log.debug("ignoring a %s frame", frame.kind)

    def _on_error(self, frame: ErrorFrame) -> None:
        log.warning("server reports %s: %s", frame.code, frame.message)
        if frame.fatal:
            raise error_for_code(frame.code, frame.message) or TransportError(
                f"server ended the session: {frame.code}: {frame.message}"
            )

    async def _heartbeats(self, interval: float) -> None:
        while True:
            status = await asyncio.to_thread(self.ctx.status.collect)
            await self._send(HeartbeatFrame(status=status))
            await asyncio.sleep(interval)

    async def _flush(self) -> None:
        """Send each pending update once per connection; they stay pending until acked,
        and the next connection sends them again."""
        outbox = self.ctx.outbox
        sent: dict[RunKey, int] = {}
        while True:
            version = outbox.version
            for queued in outbox.queued():
                if sent.get(queued.key) != queued.version:
                    await self._send(RunUpdateFrame(update=queued.update))
                    sent[queued.key] = queued.version
            await outbox.wait_for_change(version)

    async def _progress(self, supported: bool) -> None:
        """Send live progress, batched; to an older server, drop it."""
        queue = self.ctx.progress
        while True:
            await queue.wait()
            for progress in queue.take():
                if supported:
                    await self._send(RunProgressFrame(progress=progress))
            await asyncio.sleep(PROGRESS_INTERVAL_S)

    async def _program_reports(self, supported: bool, interval: float) -> None:
        """Report the programs to a server that takes them (protocol 3)."""
        feed = self.ctx.programs
        if feed is None or not supported:
            await asyncio.Event().wait()
            return

        async def send(report: ProgramReport) -> None:
            await self._send(ProgramReportFrame(report=report))

        await feed.reports(send, interval=interval)

    async def _send(self, frame: BaseModel) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise TransportError("the WebSocket is closed")
        try:
            async with self._send_lock:
                await ws.send_str(dump(frame))
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise TransportError(f"cannot send: {exc}") from exc


def _closed(ws: aiohttp.ClientWebSocketResponse, message: aiohttp.WSMessage) -> Exception:
    """The error for a connection that ended with ``message``."""
    code = ws.close_code
    reason = message.extra if isinstance(message.extra, str) else ""
    if message.type is aiohttp.WSMsgType.CLOSE and isinstance(message.data, int):
        code = message.data
    if code == CloseCode.REVOKED:
        if reason == ErrorCode.UNKNOWN_CREDENTIAL:
            return UnknownCredential("the server does not know this machine's credential")
        return CredentialRevoked(reason or ErrorCode.CREDENTIAL_REVOKED)
    if code == CloseCode.DUPLICATE:
        return DuplicateMachine("another live agent is connected with this machine id")
    # Every other code (PROTOCOL_ERROR, SILENT, SERVER_ERROR...) is a TransportError: the
    # connection loop reconnects with backoff.
    if message.type is aiohttp.WSMsgType.ERROR:
        return TransportError(f"WebSocket error: {message.data}")
    return TransportError(f"the server closed the WebSocket (code {code}) {reason}".strip())
