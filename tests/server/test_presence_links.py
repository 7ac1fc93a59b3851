"""A machine's credential on a new connection replaces the link the server still holds
(the machine lost power and came back), and the session it replaced is refused as a
clone if it speaks again. Over real sockets, on both transports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import httpx
import pytest

from tests.procs import ServerProc
from wcms.protocol import (
    CloseCode,
    HeartbeatFrame,
    HelloFrame,
    StatusReport,
    WelcomeFrame,
    server_frame,
)
from wcms.protocol.messages import dump

pytestmark = pytest.mark.e2e

STATUS = StatusReport(cpu_percent=1, ram_used=1, ram_total=2, ram_percent=50)


@pytest.fixture(scope="module")
def server(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProc]:
    """The test sockets send no heartbeats: silence is noticed after a minute only."""
    proc = ServerProc(
        tmp_path_factory.mktemp("server"), module_database_url, heartbeat_timeout=60
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def headers(credential: str, session: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}", "X-WCMS-Session": session}


@asynccontextmanager
async def agent_socket(
    server: ServerProc, credential: str, session: str
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A WebSocket that said hello as ``session`` and was welcomed."""
    url = server.url.replace("http://", "ws://") + "/api/client/ws"
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(url, headers=headers(credential, session)) as ws,
    ):
        await ws.send_str(dump(HelloFrame(session_id=session)))
        answer = await asyncio.wait_for(ws.receive(), 10)
        assert isinstance(server_frame(answer.data), WelcomeFrame), answer
        yield ws


async def handshake_status(server: ServerProc, credential: str, session: str) -> int:
    """The HTTP status of a WebSocket handshake as ``session`` (101 when accepted)."""
    url = server.url.replace("http://", "ws://") + "/api/client/ws"
    async with aiohttp.ClientSession() as client:
        try:
            async with client.ws_connect(url, headers=headers(credential, session)):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_a_new_websocket_replaces_the_one_the_server_still_holds(server):
    credential = server.enrol("replace-ws")
    api = server.api()

    async def go() -> tuple[aiohttp.WSMessage, int]:
        async with (
            agent_socket(server, credential, "before-power-loss") as old,
            agent_socket(server, credential, "after-power-loss"),
        ):
            closed = await asyncio.wait_for(old.receive(), 10)
            # The replaced session speaks again: that agent is alive, a clone.
            again = await handshake_status(server, credential, "before-power-loss")
        return closed, again

    assert api.machine("replace-ws")["conflict"] is None
    closed, again = asyncio.run(go())
    assert closed.type is aiohttp.WSMsgType.CLOSE, closed
    assert (closed.data, closed.extra) == (CloseCode.DUPLICATE, "replaced")
    assert again == 409
    conflict = api.machine("replace-ws")["conflict"]
    assert conflict is not None and conflict["session"] == "before-power-loss"
    history = api.get("/api/machines/replace-ws/presence")
    assert "offline" not in [event["status"] for event in history[1:]], history


def test_the_replacing_agent_keeps_the_machine_while_the_clone_is_refused(server):
    """No ping-pong: the refused session does not take the machine back, however often
    it retries."""
    credential = server.enrol("no-ping-pong")
    api = server.api()

    async def go() -> list[int]:
        async with (
            agent_socket(server, credential, "original") as original,
            agent_socket(server, credential, "clone") as clone,
        ):
            await asyncio.wait_for(original.receive(), 10)
            statuses = [await handshake_status(server, credential, "original")]
            statuses.append(await handshake_status(server, credential, "original"))
            await clone.send_str(dump(HeartbeatFrame(status=STATUS)))
            assert not clone.closed
        return statuses

    assert asyncio.run(go()) == [409, 409]
    assert api.machine("no-ping-pong")["conflict"]["session"] == "original"


def test_a_new_http_session_replaces_the_old_one_which_is_then_refused(server):
    credential = server.enrol("replace-http")
    api = server.api()
    body = {"status": STATUS.model_dump(mode="json")}

    def heartbeat(session: str) -> httpx.Response:
        return httpx.post(
            server.url + "/api/client/heartbeat",
            json=body,
            headers=headers(credential, session),
            timeout=10,
        )

    assert heartbeat("old").status_code == 200
    assert heartbeat("new").status_code == 200
    assert api.machine("replace-http")["conflict"] is None
    refused = heartbeat("old")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "duplicate_machine"
    assert api.machine("replace-http")["conflict"]["session"] == "old"
    assert heartbeat("new").status_code == 200
