"""`wcms server` and `wcms demo`."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wcms.cli.options import DatabaseUrl, DataDir, require_server, server_settings

Host = Annotated[
    str | None, typer.Option("--host", help="Address to listen on [default 127.0.0.1]")
]
Port = Annotated[int | None, typer.Option("--port", help="Port to listen on [default 8000]")]
LogLevel = Annotated[str | None, typer.Option("--log-level", help="debug, info, warning, error")]


def server(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option("--heartbeat-interval", help="Seconds between agent heartbeats [30]"),
    ] = None,
    offline_grace: Annotated[
        float | None,
        typer.Option("--offline-grace", help="Seconds before a dropped agent is offline [10]"),
    ] = None,
    log_level: LogLevel = None,
) -> None:
    """Run the WCMS server (migrates the database first)."""
    settings = server_settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        heartbeat_interval=heartbeat_interval,
        offline_grace=offline_grace,
        log_level=log_level,
    )
    serve(settings)


def serve(settings: Any) -> None:
    """Run uvicorn with the app until SIGINT/SIGTERM."""
    uvicorn = require_server("uvicorn")
    app_module = require_server("wcms.server.app")
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        app_module.create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        ws_max_size=settings.max_request_bytes,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=5,
        backlog=4096,
    )
    uvicorn.Server(config).run()


def demo(
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the demo keeps its data")
    ] = Path("wcms-demo"),
) -> None:
    """Run a server and one local agent on SQLite, to try WCMS out.

    Power actions of the demo agent are only recorded (in DATA_DIR/power.jsonl), never
    carried out. Stop with Ctrl-C.
    """
    settings = server_settings(
        host="127.0.0.1", port=port, data_dir=data_dir, demo=True, heartbeat_interval=10
    )
    url = f"http://127.0.0.1:{port}"
    token, key = asyncio.run(_demo_credentials(settings))
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wcms",
            "agent",
            "--server",
            url,
            "--token",
            token,
            "--state-dir",
            str(data_dir / "agent"),
            "--power-backend",
            f"record:{data_dir / 'power.jsonl'}",
        ],
    )
    typer.echo(
        f"\n  Dashboard: {url}  (user admin, password below)\n  API docs:  {url}/docs\n"
        f"  CLI:       export WCMS_URL={url} WCMS_API_KEY={key}\n"
        "             wcms pcs; wcms exec all -- uname -a\n"
    )
    try:
        serve(settings)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=5)
        except subprocess.TimeoutExpired:
            agent.kill()


async def _demo_credentials(settings: Any) -> tuple[str, str]:
    core_module = require_server("wcms.server.core")
    migrate = require_server("wcms.server.store.migrate")
    audit = require_server("wcms.server.services.audit")
    core = core_module.Core(settings)
    try:
        await migrate.upgrade(core.db.engine)
        actor = audit.Actor("demo")
        _, token = await core.enrollment.create_token(
            uses=1, ttl_s=3600, note="demo", actor=actor, room="Demo"
        )
        _, key = await core.accounts.create_api_key("demo", actor=actor)
    finally:
        await core.db.dispose()
    return token, key


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
