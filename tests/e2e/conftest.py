"""Fixtures that start real server and agent processes."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.procs import AgentProc, ServerProc

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is end to end (`-m "not e2e"` runs the fast ones); the
    dashboard's, which drive a real browser against timed pages, run on their own after
    the parallel part of the suite (`serial`)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            if item.path.name.startswith("test_dashboard"):
                item.add_marker(pytest.mark.serial)


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Override per test with @pytest.mark.parametrize or a local fixture."""
    return {}


@pytest.fixture
def server(
    database_url: str | None, tmp_path: Path, server_settings: dict[str, Any]
) -> Iterator[ServerProc]:
    proc = ServerProc(tmp_path / "server", database_url, **server_settings).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def spawn_on(tmp_path: Path) -> Iterator[Callable[..., AgentProc]]:
    """Start agents against any server: spawn_on(server, "lab-01") enrols with a token of
    that server's on first start; all are killed when the test ends."""
    agents: list[AgentProc] = []
    tokens: dict[str, str] = {}

    def start(
        server: ServerProc,
        machine_id: str,
        *,
        transport: str = "ws",
        state: str | None = None,
        **kw: Any,
    ) -> AgentProc:
        if server.url not in tokens:
            tokens[server.url] = server.token(uses=50)
        agent = AgentProc(
            server,
            tmp_path / f"agent-{state or machine_id}",
            machine_id,
            token=kw.pop("token", tokens[server.url]),
            transport=transport,
            **kw,
        )
        agents.append(agent)
        return agent.start()

    try:
        yield start
    finally:
        for agent in agents:
            agent.stop(kill=True)


@pytest.fixture
def spawn(server: ServerProc, spawn_on: Callable[..., AgentProc]) -> Callable[..., AgentProc]:
    """Start agents of the test's server: spawn("lab-01", transport="http")."""
    return functools.partial(spawn_on, server)


@pytest.fixture
def no_game_left(tmp_path: Path) -> Iterator[None]:
    """Programs outlive their agent by design: kill every fake game this test started."""
    yield
    mark = str(tmp_path)
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        started_here = any(mark in part for part in cmdline)
        if started_here and any(part.endswith("fakegame.py") for part in cmdline):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
