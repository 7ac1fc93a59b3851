"""Fixtures for fault tests: a server on the host end of a veth pair, agents inside a
network namespace whose link (or power) the test takes away.

Every test here prints the presence timings it measures (``pytest -s`` shows them);
it asserts only that each transition happens, within a generous bound.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.faults.netns import Namespace, free_subnet, namespaces, require_netns
from tests.procs import AgentProc, Api, ServerProc, wait_for

# Settings of the fault servers: short enough for tests, in production's proportions.
FAULT_SETTINGS: dict[str, Any] = {
    "heartbeat_interval": 2,
    "heartbeat_timeout": 6,
    "offline_grace": 3,
    "poll_timeout": 10,
}
# Slack on every stated bound: a loaded test machine, the sweeper's one-second beat.
SLACK_S = 10.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: breaks the network or the power of a real agent (root, ip netns)"
    )


def report(what: str, seconds: float, *, bound: float) -> None:
    """Print one measured presence timing, next to the bound it must respect."""
    print(f"\npresence timing: {what}: {seconds:.2f} s (stated bound {bound:g} s)")


def changed_at(api: Api, machine_id: str) -> float:
    """When the server last changed the machine's status (a Unix time)."""
    stamp = api.machine(machine_id)["status_changed_at"]
    return datetime.fromisoformat(stamp).timestamp()


def wait_status(api: Api, machine_id: str, status: str, *, timeout: float) -> float:
    """Wait until the machine has ``status``; returns when the server changed it."""
    wait_for(
        lambda: api.status_of(machine_id) == status,
        timeout=timeout,
        interval=0.1,
        what=f"{machine_id} {status}",
    )
    return changed_at(api, machine_id)


class Lab:
    """One server and the namespaces its agents run in, all on one /30: the server
    listens on the host end, so a namespace made again after a power loss is the
    same machine at the same address."""

    def __init__(self, tmp_path: Path, made: list[Namespace]) -> None:
        self.tmp_path = tmp_path
        self.subnet: ipaddress.IPv4Network = free_subnet()
        self._made = made
        self.agents: list[AgentProc] = []
        self.server: ServerProc | None = None

    def machine(self) -> Namespace:
        """A new namespace on the lab's subnet (one at a time: they share addresses)."""
        namespace = Namespace(self.subnet)
        self._made.append(namespace)
        return namespace.create()

    def start_server(
        self, namespace: Namespace, database_url: str | None, **settings: Any
    ) -> ServerProc:
        self.server = ServerProc(
            self.tmp_path / "server",
            database_url,
            bind=namespace.host_addr,
            **{**FAULT_SETTINGS, **settings},
        ).start()
        return self.server

    def agent(
        self,
        namespace: Namespace,
        machine_id: str,
        *,
        state: str | None = None,
        transport: str = "ws",
        token: str | None = None,
    ) -> AgentProc:
        """Start an agent inside ``namespace``; ``state`` names its state directory
        (the same name: the same credential)."""
        assert self.server is not None
        agent = AgentProc(
            self.server,
            self.tmp_path / f"agent-{state or machine_id}",
            machine_id,
            token=token,
            transport=transport,
            prefix=namespace.exec_prefix,
        )
        self.agents.append(agent)
        return agent.start()

    def close(self) -> None:
        for agent in self.agents:
            agent.stop(kill=True)
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A lab whose agents, server and namespaces are gone after the test, whatever
    happened in it."""
    require_netns()
    with namespaces() as made:
        lab = Lab(tmp_path, made)
        try:
            yield lab
        finally:
            lab.close()


def connected(agent: AgentProc, transport: str = "ws") -> int:
    """How many times the agent has logged a connection to the server."""
    text = "connected over WebSocket as" if transport == "ws" else "connected over HTTP"
    return agent.log().count(text)


def wait_connected(
    agent: AgentProc, before: int, *, transport: str = "ws", timeout: float
) -> float:
    """Wait until the agent has connected once more than ``before``; returns when."""
    wait_for(
        lambda: connected(agent, transport) > before,
        timeout=timeout,
        interval=0.1,
        what="the agent connected",
    )
    return time.time()
