"""The database fails just when a machine goes offline: the offline is written once the
database is back, instead of the machine staying online for good.

PostgreSQL only: it can be taken away from outside the server process for real
(``ALLOW_CONNECTIONS false`` and its backends terminated).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _pg, bring_back, drop_pg_database, make_pg_database, take_away
from tests.procs import AgentProc, ServerProc, wait_for

pytestmark = pytest.mark.e2e

NOT_STORED = "presence changes not stored"


def unstored(server: ServerProc) -> float:
    for line in httpx.get(server.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("wcms_presence_unstored "):
            return float(line.split()[1])
    raise AssertionError("no wcms_presence_unstored on /metrics")


@pytest.fixture
def pg_server(postgres_ready: None, tmp_path: Path) -> Iterator[tuple[ServerProc, str]]:
    name, url = make_pg_database()
    proc = ServerProc(tmp_path / "server", url, offline_grace=1).start()
    try:
        yield proc, name
    finally:
        proc.stop()
        asyncio.run(_pg(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        drop_pg_database(name)


@pytest.fixture
def agent(pg_server: tuple[ServerProc, str], tmp_path: Path) -> Iterator[AgentProc]:
    server, _ = pg_server
    proc = AgentProc(server, tmp_path / "agent", "lab-01", token=server.token()).start()
    try:
        yield proc
    finally:
        proc.stop(kill=True)


@pytest.mark.parametrize(
    ("how", "reason"),
    [("kill", "connection_lost"), ("stop", "shutdown")],
    ids=["killed-offline-after-the-grace", "stopped-offline-at-once"],
)
def test_an_offline_that_could_not_be_stored_is_stored_once_the_database_is_back(
    pg_server, agent, how, reason
):
    server, name = pg_server
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="online")
    take_away(name)
    if how == "kill":
        agent.stop(kill=True)
    else:
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(timeout=20) == 0
    wait_for(lambda: NOT_STORED in server.log(), timeout=30, what="the offline write failed")
    # Kept, and written again every second (said only once, counted on /metrics).
    wait_for(lambda: unstored(server) == 1, timeout=30, what="the change kept to retry")
    bring_back(name)
    wait_for(lambda: api.status_of("lab-01") == "offline", timeout=30, what="offline")
    assert api.machine("lab-01")["status_reason"] == reason
    history = api.get("/api/machines/lab-01/presence")
    assert [(e["status"], e["reason"]) for e in history[:2]] == [
        ("offline", reason),
        ("online", "connected"),
    ]
    log = server.log()
    assert log.count(NOT_STORED) == 1, "said more than once per outage"
    wait_for(lambda: "presence changes stored again" in server.log(), what="recovery said")
    assert unstored(server) == 0
    assert "Traceback" not in log
