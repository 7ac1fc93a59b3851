"""The ASGI application: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from wcms import __version__
from wcms.server import openapi, web
from wcms.server.api import (
    alert_config,
    alerts,
    audit,
    auth,
    commands,
    credentials,
    deliveries,
    errors,
    events,
    files,
    health,
    machines,
    policies,
    programs,
    rooms,
)
from wcms.server.api.body_limit import BodyLimit
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
    openapi.install(app)
    routers = (health, auth, machines, rooms, events, commands, programs, credentials, audit)
    alerting = (alert_config, alerts, deliveries)
    for module in (*routers, *alerting, files, policies, agent_http, agent_files, agent_ws):
        app.include_router(module.router)
    web.install(app)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes,
        uploads={files.router.prefix: settings.max_upload_bytes}
        | {agent_files.router.prefix: settings.max_upload_bytes},
    )
    return app
