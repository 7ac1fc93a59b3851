"""A small stand-in for the WCMS server's agent endpoints, on a real local socket.

It follows the protocol as the agent expects it (re-sending undone runs on every
connect and poll, acknowledging stored updates) and can be told to misbehave.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

from wcms.protocol import (
    TERMINAL_STATES,
    CommandPoll,
    ErrorBody,
    HeartbeatFrame,
    HelloFrame,
    RegisterRequest,
    RegisterResponse,
    RunAckFrame,
    RunEnvelope,
    RunFrame,
    RunUpdate,
    RunUpdateFrame,
    ShutdownFrame,
    WelcomeFrame,
    agent_frame,
)
from wcms.protocol.messages import dump
from wcms.protocol.programs import ProgramReport, ProgramReportAck


@dataclass
class FakeServer:
    tokens: set[str] = field(default_factory=lambda: {"good-token"})
    credential: str = "cred-1"
    revoked: bool = False
    # Answer the WebSocket handshake with this HTTP status instead of upgrading.
    ws_status: int | None = None
    # Close the WebSocket with (code, reason) right after the welcome.
    close_after_welcome: tuple[int, str] | None = None
    heartbeat_interval: float = 0.2
    poll_timeout: float = 0.3
    pending: dict[int, RunEnvelope] = field(default_factory=dict)
    updates: list[RunUpdate] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/client/register", self.register)
        app.router.add_post("/api/client/heartbeat", self.heartbeat)
        app.router.add_get("/api/client/command", self.poll)
        app.router.add_post("/api/client/command/result", self.result)
        app.router.add_post("/api/client/command/progress", self.progress)
        app.router.add_post("/api/client/programs", self.programs)
        app.router.add_post("/api/client/shutdown", self.shutdown)
        app.router.add_get("/api/client/ws", self.websocket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def final(self, run_id: int) -> RunUpdate | None:
        for update in self.updates:
            if update.run_id == run_id and update.state in TERMINAL_STATES:
                return update
        return None

    async def wait_for(self, what: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while what not in self.events:
                await asyncio.sleep(0.01)

    # --- endpoints ------------------------------------------------------------------

    def _refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if self.revoked:
            return error(401, "credential_revoked", "revoked by admin")
        if header != f"Bearer {self.credential}":
            return error(401, "unknown_credential", "no such credential")
        if not request.headers.get("X-WCMS-Session"):
            return error(400, "no_session", "missing session header")
        return None

    async def register(self, request: web.Request) -> web.Response:
        body = RegisterRequest.model_validate_json(await request.read())
        if body.enrollment_token is not None:
            if body.enrollment_token not in self.tokens:
                return error(401, "invalid_token", "this enrolment token is not valid")
            self.events.append("enrolled")
            return json(self._registered(body, credential=self.credential))
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.events.append("hello-http")
        return json(self._registered(body, credential=None))

    def _registered(self, body: RegisterRequest, *, credential: str | None) -> RegisterResponse:
        return RegisterResponse(
            machine_id=body.machine_id,
            credential=credential,
            heartbeat_interval=self.heartbeat_interval,
            poll_timeout=self.poll_timeout,
        )

    async def heartbeat(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.events.append("heartbeat-http")
        return web.json_response({"ok": True})

    async def poll(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if not self.pending:
            await asyncio.sleep(min(float(request.query["wait"]), 1.0))
        return json(CommandPoll(runs=list(self.pending.values())))

    async def result(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self._store(RunUpdate.model_validate_json(await request.read()))
        return web.json_response({"ok": True})

    async def progress(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        return web.json_response({"ok": True})

    async def programs(self, request: web.Request) -> web.Response:
        """Every program event stored; the agent's set is the server's."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        report = ProgramReport.model_validate_json(await request.read())
        seq = max((event.seq for event in report.events), default=0)
        return json(ProgramReportAck(seq=seq))

    async def shutdown(self, request: web.Request) -> web.Response:
        self.events.append("shutdown-http")
        return web.json_response({"ok": True})

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if self.ws_status is not None:
            return error(self.ws_status, "nope", "no websockets here")
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        hello = agent_frame((await ws.receive()).data)
        assert isinstance(hello, HelloFrame)
        self.events.append("hello-ws")
        await ws.send_str(
            dump(
                WelcomeFrame(
                    machine_id="m",
                    heartbeat_interval=self.heartbeat_interval,
                    server_time=datetime.now(UTC),
                )
            )
        )
        if self.close_after_welcome is not None:
            code, reason = self.close_after_welcome
            await ws.close(code=code, message=reason.encode())
            return ws
        for envelope in list(self.pending.values()):
            await ws.send_str(dump(RunFrame(run=envelope)))
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                break
            await self._on_frame(ws, message.data)
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, text: str) -> None:
        frame = agent_frame(text)
        if isinstance(frame, RunUpdateFrame):
            self._store(frame.update)
            update = frame.update
            await ws.send_str(
                dump(RunAckFrame(run_id=update.run_id, attempt=update.attempt, state=update.state))
            )
        elif isinstance(frame, HeartbeatFrame):
            self.events.append("heartbeat-ws")
        elif isinstance(frame, ShutdownFrame):
            self.events.append("shutdown-ws")

    def _store(self, update: RunUpdate) -> None:
        self.updates.append(update)
        self.events.append(f"update-{update.run_id}-{update.state.value}")
        if update.state in TERMINAL_STATES:
            self.pending.pop(update.run_id, None)


def json(model: RegisterResponse | CommandPoll | ProgramReportAck) -> web.Response:
    return web.Response(text=dump(model), content_type="application/json")


def error(status: int, code: str, message: str) -> web.Response:
    body = {"error": ErrorBody(code=code, message=message).model_dump(exclude_none=True)}
    return web.json_response(body, status=status)
