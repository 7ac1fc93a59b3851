"""The agent WebSocket (``/api/client/ws``) over a real socket: a connection must start
with a hello, and one that starts otherwise is closed as a protocol error."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.procs import ServerProc, wait_for
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

MACHINE = "socket-1"
STATUS = StatusReport(cpu_percent=1, ram_used=1, ram_total=2, ram_percent=50)


@pytest.fixture(scope="module")
def agent_credential(server: ServerProc) -> str:
    return server.enrol(MACHINE)


async def first_answer(server: ServerProc, credential: str, first_frame: str) -> aiohttp.WSMessage:
    """Connect as the agent, send ``first_frame``, and return what the server answers."""
    url = server.url.replace("http://", "ws://") + "/api/client/ws"
    headers = {"Authorization": f"Bearer {credential}", "X-WCMS-Session": "socket-test"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=headers) as ws,
    ):
        await ws.send_str(first_frame)
        return await asyncio.wait_for(ws.receive(), 10)


def test_a_hello_first_is_welcomed(server, agent_credential):
    """The credential is good: what the other tests see is the first frame's fault."""
    hello = dump(HelloFrame(session_id="socket-test"))
    answer = asyncio.run(first_answer(server, agent_credential, hello))
    assert answer.type is aiohttp.WSMsgType.TEXT, answer
    welcome = server_frame(answer.data)
    assert isinstance(welcome, WelcomeFrame)
    assert welcome.machine_id == MACHINE


@pytest.mark.parametrize(
    "first_frame",
    [dump(HeartbeatFrame(status=STATUS)), '{"kind": "no-such-frame"}', "not json at all"],
    ids=["heartbeat", "unknown-kind", "not-json"],
)
def test_a_first_frame_other_than_hello_is_a_protocol_error(server, agent_credential, first_frame):
    answer = asyncio.run(first_answer(server, agent_credential, first_frame))
    assert answer.type is aiohttp.WSMsgType.CLOSE, answer
    assert (answer.data, answer.extra) == (CloseCode.PROTOCOL_ERROR, "hello_expected")
    # Logged as what it is, not as a timeout.
    wait_for(lambda: "hello_expected" in server.log(), what="the protocol error logged")


async def answer_to_binary(server: ServerProc, credential: str, *, after_hello: bool) -> Any:
    url = server.url.replace("http://", "ws://") + "/api/client/ws"
    headers = {"Authorization": f"Bearer {credential}", "X-WCMS-Session": "socket-test"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=headers) as ws,
    ):
        if after_hello:
            await ws.send_str(dump(HelloFrame(session_id="socket-test")))
            welcome = await asyncio.wait_for(ws.receive(), 10)
            assert welcome.type is aiohttp.WSMsgType.TEXT, welcome
        await ws.send_bytes(b"\x00\x01binary")
        return await asyncio.wait_for(ws.receive(), 10)


@pytest.mark.parametrize("after_hello", [False, True], ids=["first", "after-hello"])
def test_a_binary_frame_is_closed_with_a_reason(server, agent_credential, after_hello):
    """The protocol is JSON text: a binary frame gets a close frame saying so, and one
    log line, never a dropped connection and a traceback."""
    answer = asyncio.run(answer_to_binary(server, agent_credential, after_hello=after_hello))
    assert answer.type is aiohttp.WSMsgType.CLOSE, answer
    assert (answer.data, answer.extra) == (CloseCode.PROTOCOL_ERROR, "text_expected")
    wait_for(lambda: "text_expected" in server.log(), what="the protocol error logged")
    assert "Traceback" not in server.log()
