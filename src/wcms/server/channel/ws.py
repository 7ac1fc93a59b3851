"""The agent WebSocket: the primary, push-based path between agent and server."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from wcms.protocol import (
    PROGRAMS_SINCE_VERSION,
    CloseCode,
    ErrorFrame,
    HeartbeatFrame,
    HelloFrame,
    RunAckFrame,
    RunProgressFrame,
    RunUpdateFrame,
    ShutdownFrame,
    WelcomeFrame,
    agent_frame,
    close_code_for_status,
)
from wcms.protocol.programs import ProgramAckFrame, ProgramReportFrame, ProgramsFrame
from wcms.server.channel.auth import bearer, session_of
from wcms.server.channel.links import WsLink
from wcms.server.core import Core
from wcms.server.errors import StorageError, WcmsError
from wcms.server.services.clock import utcnow

router = APIRouter()
log = logging.getLogger("wcms.channel")

HELLO_TIMEOUT_S = 15.0
MAX_BAD_FRAMES = 20
# Run updates being stored for one agent while its connection goes on being read: an
# agent that reports a start and an end back to back gets both into one database round.
MAX_UPDATES_IN_FLIGHT = 32


class ProtocolError(Exception):
    """The agent broke the WebSocket protocol; its connection is closed with
    CloseCode.PROTOCOL_ERROR and ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@router.websocket("/api/client/ws")
async def agent_socket(websocket: WebSocket) -> None:
    core: Core = websocket.app.state.core
    try:
        machine_id, _ = await core.enrollment.authenticate(bearer(websocket.headers))
        link = WsLink(websocket, machine_id, session_of(websocket.headers))
        await core.presence.attach(link)
    except WcmsError as exc:
        await _deny(websocket, exc)
        return
    goodbye: str | None = None
    try:
        await websocket.accept()
        goodbye = await _converse(core, link)
    except WebSocketDisconnect:
        pass
    except RuntimeError:
        # The server closed this link itself (replaced, revoked, silent, or a report it
        # could not store) while the loop waited for the next frame: nothing to read.
        if not link.closed:
            raise
    except TimeoutError:
        await link.close(CloseCode.PROTOCOL_ERROR, "hello_timeout")
    except ProtocolError as exc:
        log.warning("closing the connection of %s: %s", link.machine_id, exc)
        await link.close(CloseCode.PROTOCOL_ERROR, exc.reason)
    except StorageError:
        # The database failed mid-conversation: the agent reconnects with backoff, and
        # re-sends what was not acknowledged.
        await link.close(CloseCode.TRY_AGAIN_LATER, "storage_unavailable")
    except WcmsError as exc:
        # Input the services refused (a hello whose inventory does not fit): said in
        # one line, and the agent is told why.
        log.warning("closing the connection of %s: %s", link.machine_id, exc.message)
        await link.close(close_code_for_status(exc.status_code), exc.code)
    except Exception:
        # A defect of the server's: logged whole, and the agent still gets a close
        # frame (it reconnects and re-sends what was not acknowledged).
        log.exception("the connection of %s failed", link.machine_id)
        await link.close(CloseCode.SERVER_ERROR, "server_error")
    finally:
        # Never raises for the database: a presence change it cannot store now is
        # kept and retried by the presence sweep.
        await core.presence.detach(link, reason=goodbye)
        if goodbye is not None:
            await link.close(CloseCode.NORMAL, "goodbye")


async def _converse(core: Core, link: WsLink) -> str | None:
    """Serve one connection; returns the agent's goodbye reason, if it said goodbye."""
    hello = await _hello(link)
    if hello.inventory is not None:
        ip = link.websocket.client.host if link.websocket.client else None
        await core.enrollment.update_inventory(link.machine_id, hello.inventory, ip)
    await link.send(
        WelcomeFrame(
            machine_id=link.machine_id,
            heartbeat_interval=core.settings.heartbeat_interval,
            server_time=utcnow(),
        )
    )
    link.protocol_version = hello.protocol_version
    link.ready = True
    await core.commands.deliver_pending(link.machine_id)
    if hello.protocol_version >= PROGRAMS_SINCE_VERSION:
        stale = await core.programs.stale_set(link.machine_id, hello.programs_revision)
        if stale is not None:
            await link.send(ProgramsFrame(set=stale))
    updates: set[asyncio.Task[None]] = set()
    try:
        return await _read_frames(core, link, updates)
    finally:
        # Updates already received are stored even if the connection is gone; the
        # agent re-sends any whose acknowledgement it did not get.
        if updates:
            await asyncio.wait(updates)


async def _hello(link: WsLink) -> HelloFrame:
    """The connection's first frame, which must be a hello; raises TimeoutError when
    none comes in time, ProtocolError when another frame comes first."""
    raw = await asyncio.wait_for(_receive(link), HELLO_TIMEOUT_S)
    try:
        frame = agent_frame(raw)
    except ValidationError as exc:
        raise ProtocolError("hello_expected", _first_error(exc)) from exc
    if not isinstance(frame, HelloFrame):
        raise ProtocolError("hello_expected", f"the first frame was {frame.kind!r}, not hello")
    return frame


async def _read_frames(core: Core, link: WsLink, updates: set[asyncio.Task[None]]) -> str | None:
    bad_frames = 0
    while True:
        raw = await _receive(link)
        link.touch()
        try:
            frame = agent_frame(raw)
        except ValidationError as exc:
            bad_frames += 1
            await link.send(ErrorFrame(code="bad_frame", message=_first_error(exc)))
            if bad_frames > MAX_BAD_FRAMES:
                await link.close(CloseCode.PROTOCOL_ERROR, "too_many_bad_frames")
                return None
            continue
        if isinstance(frame, HeartbeatFrame):
            core.heartbeats.submit(link.machine_id, frame.status)
        elif isinstance(frame, RunUpdateFrame):
            if len(updates) >= MAX_UPDATES_IN_FLIGHT:
                await asyncio.wait(updates, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(_apply(core, link, frame))
            updates.add(task)
            task.add_done_callback(updates.discard)
        elif isinstance(frame, RunProgressFrame):
            await core.progress.apply(link.machine_id, frame.progress)
        elif isinstance(frame, ProgramReportFrame):
            await _report_programs(core, link, frame)
        elif isinstance(frame, ShutdownFrame):
            return frame.reason


async def _receive(link: WsLink) -> str:
    """The next text frame; raises WebSocketDisconnect when the agent went away and
    ProtocolError for a binary frame (the protocol is JSON text)."""
    message = await link.websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", CloseCode.NORMAL), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise ProtocolError("text_expected", "frames are JSON text, a binary frame came")
    return str(text)


async def _apply(core: Core, link: WsLink, frame: RunUpdateFrame) -> None:
    update = frame.update
    try:
        await core.commands.apply_update(link.machine_id, update)
    except StorageError:
        # Not stored (the database failed): drop the connection unacknowledged, so the
        # agent reconnects and sends the update again.
        log.warning("run update from %s not stored: the database failed", link.machine_id)
        await link.close(CloseCode.TRY_AGAIN_LATER, "storage_unavailable")
        return
    except WcmsError as exc:
        await link.send(ErrorFrame(code=exc.code, message=exc.message))
        return
    except Exception:
        # Not stored: drop the connection unacknowledged, so the agent re-sends it.
        log.exception("run update from %s not stored", link.machine_id)
        await link.close(CloseCode.SERVER_ERROR, "server_error")
        return
    await link.send(RunAckFrame(run_id=update.run_id, attempt=update.attempt, state=update.state))


async def _report_programs(core: Core, link: WsLink, frame: ProgramReportFrame) -> None:
    """Store a program report, then ack it (and send the set if the agent's is stale).

    A database failure ends the connection unacknowledged (StorageError goes up): the
    agent reconnects and sends the report again."""
    try:
        ack = await core.programs.apply_report(link.machine_id, frame.report)
    except StorageError:
        raise
    except WcmsError as exc:
        await link.send(ErrorFrame(code=exc.code, message=exc.message))
        return
    await link.send(ProgramAckFrame(seq=ack.seq))
    if ack.programs is not None:
        await link.send(ProgramsFrame(set=ack.programs))


async def _deny(websocket: WebSocket, exc: WcmsError) -> None:
    """Refuse the handshake with an HTTP status and a JSON error body."""
    body = {"error": {"code": exc.code, "message": exc.message}}
    try:
        await websocket.send_denial_response(JSONResponse(body, status_code=exc.status_code))
    except RuntimeError:
        # The ASGI server cannot send a denial body: close with the code as reason.
        await websocket.close(code=close_code_for_status(exc.status_code), reason=exc.code)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
