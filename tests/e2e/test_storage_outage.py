"""The database goes away under a running server and comes back: the API says so in
JSON, an agent that connects meanwhile is refused cleanly and keeps retrying, and once
the database is back everything works without a restart.

PostgreSQL only: it can be taken away from outside the server process for real
(``ALLOW_CONNECTIONS false`` and its backends terminated).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _pg, bring_back, drop_pg_database, make_pg_database, take_away
from tests.procs import AgentProc, ServerProc, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def pg_server(postgres_ready: None, tmp_path: Path) -> Iterator[tuple[ServerProc, str]]:
    name, url = make_pg_database()
    proc = ServerProc(tmp_path / "server", url).start()
    try:
        yield proc, name
    finally:
        proc.stop()
        asyncio.run(_pg(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        drop_pg_database(name)


def test_an_outage_is_reported_and_survived(pg_server, tmp_path):
    server, name = pg_server
    api = server.api()
    agent = AgentProc(server, tmp_path / "agent", "lab-01", token=server.token()).start()
    try:
        wait_for(lambda: api.status_of("lab-01") == "online", what="lab-01 online")
        agent.stop()  # it comes back during the outage
        take_away(name)

        answer = httpx.post(
            server.url + "/api/commands",
            json={"selector": "lab-01", "type": "execute", "payload": {"command": "true"}},
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=30,
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "storage_unavailable"

        agent.start()
        wait_for(
            lambda: agent.log().count("the server is unavailable") >= 2,
            timeout=30,
            what="the agent refused and retrying",
        )
        assert "long-poll" not in agent.log()  # the WebSocket works: no fallback

        bring_back(name)
        wait_for(lambda: api.status_of("lab-01") == "online", timeout=30, what="back online")
        done = api.wait(api.exec("lab-01", "echo back")["id"])
        assert done["runs"][0]["state"] == "succeeded"
        assert "Traceback" not in server.log()
    finally:
        agent.stop(kill=True)
