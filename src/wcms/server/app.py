"""The ASGI application: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcms import __version__
from wcms.server import web
from wcms.server.api import (
    audit,
    auth,
    commands,
    credentials,
    errors,
    events,
    files,
    health,
    machines,
    policies,
    rooms,
)
from wcms.server.api.errors import error_response
from wcms.server.channel import files as agent_files
from wcms.server.channel import http as agent_http
from wcms.server.channel import ws as agent_ws
from wcms.server.core import Core
from wcms.server.settings import Settings


def create_app(settings: Settings | None = None, *, core: Core | None = None) -> FastAPI:
    settings = settings or Settings()
    core = core or Core(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await core.start()
        try:
            yield
        finally:
            await core.stop()

    app = FastAPI(
        title="WCMS",
        version=__version__,
        description="Control and monitor a fleet of computers.",
        lifespan=lifespan,
    )
    app.state.core = core
    errors.install(app)
    routers = (health, auth, machines, rooms, events, commands, credentials, audit)
    for module in (*routers, files, policies, agent_http, agent_files, agent_ws):
        app.include_router(module.router)
    web.install(app)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes,
        uploads={files.router.prefix: settings.max_upload_bytes}
        | {agent_files.router.prefix: settings.max_upload_bytes},
    )
    return app


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed; paths
    under a prefix of ``uploads`` (file uploads) have that prefix's limit instead."""

    def __init__(self, app: ASGIApp, limit: int, uploads: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = limit
        self.uploads = uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = next(
            (size for prefix, size in self.uploads.items() if path.startswith(prefix)),
            self.default_limit,
        )
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        refused = False

        async def limited() -> Message:
            # Past the limit: answer 413 ourselves and tell the app the client left.
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit and not refused:
                refused = True
                await self._refuse(scope, receive, send, limit)
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413, "payload_too_large", f"request body is larger than {limit} bytes"
        )
        await response(scope, receive, send)
