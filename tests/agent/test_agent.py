"""The whole agent against a stand-in server on a real socket: enrolment, both
transports, exactly-once runs across reconnects, refusals and their exit codes."""

from __future__ import annotations

import asyncio
import signal
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from wcms.agent.config import AgentConfig
from wcms.agent.main import Agent
from wcms.agent.platform import current_platform
from wcms.agent.state import Credential, StateDir
from wcms.protocol import CloseCode, RunState

from .fake_server import FakeServer
from .harness import make_envelope

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await server.start()
    yield server
    await server.stop()


def config(server: FakeServer, tmp_path: Path, **changes: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "server_url": server.url,
        "enrollment_token": "good-token",
        "state_dir": tmp_path / "state",
        "power_backend": f"record:{tmp_path / 'power.jsonl'}",
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        **changes,
    }
    return AgentConfig(**values)


def save_credential(tmp_path: Path, server: FakeServer) -> None:
    state = StateDir(tmp_path / "state", platform=current_platform())
    state.path.mkdir(mode=0o700)
    state.save_credential(Credential(server=server.url, machine_id="m", credential="cred-1"))


async def until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_it_enrols_and_runs_a_command_once_across_reconnects(
    server: FakeServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    envelope = make_envelope(f"echo ran >> {out}", run_id=1)
    server.pending[1] = envelope
    agent = Agent(config(server, tmp_path, transport="ws"))
    task = asyncio.create_task(agent.run())

    await until(lambda: server.final(1) is not None)
    credential = tmp_path / "state" / "credential.json"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    # The server did not take the result in yet and sends the run again after a drop.
    server.pending[1] = envelope
    await server.sockets[-1].close()
    await until(lambda: server.events.count("hello-ws") == 2)
    await until(lambda: 1 not in server.pending)
    await server.wait_for("heartbeat-ws")

    await agent.stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert out.read_text() == "ran\n"
    assert "shutdown-ws" in server.events
    assert server.events.count("enrolled") == 1
    # A run this short reports only its end; had it taken longer, running came first.
    if "update-1-running" in server.events:
        assert server.events.index("update-1-running") < server.events.index("update-1-succeeded")


async def test_a_longer_run_reports_running_before_its_end(
    server: FakeServer, tmp_path: Path
) -> None:
    server.pending[1] = make_envelope("sleep 0.6", run_id=1)
    agent = Agent(config(server, tmp_path, transport="ws"))
    task = asyncio.create_task(agent.run())
    await until(lambda: server.final(1) is not None)
    await agent.stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert server.events.index("update-1-running") < server.events.index("update-1-succeeded")


async def test_it_falls_back_to_long_poll_when_websockets_are_blocked(
    server: FakeServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    server.ws_status = 404
    server.pending[2] = make_envelope(f"echo ran >> {out}", run_id=2)
    agent = Agent(config(server, tmp_path))
    task = asyncio.create_task(agent.run())

    await until(lambda: server.final(2) is not None)
    await server.wait_for("heartbeat-http")
    await agent.stop()
    assert await asyncio.wait_for(task, 5) == 0
    final = server.final(2)
    assert final is not None and final.state is RunState.SUCCEEDED
    assert out.read_text() == "ran\n"
    assert "shutdown-http" in server.events


async def test_a_refused_token_exits_with_2(server: FakeServer, tmp_path: Path) -> None:
    agent = Agent(config(server, tmp_path, enrollment_token="bad-token"))
    assert await asyncio.wait_for(agent.run(), 5) == 2


async def test_no_credential_and_no_token_exits_with_2(server: FakeServer, tmp_path: Path) -> None:
    agent = Agent(config(server, tmp_path, enrollment_token=None))
    assert await asyncio.wait_for(agent.run(), 5) == 2
    assert server.events == []


async def test_a_revoked_credential_at_the_handshake_exits_with_3(
    server: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_credential(tmp_path, server)
    server.revoked = True
    agent = Agent(config(server, tmp_path))
    assert await asyncio.wait_for(agent.run(), 5) == 3
    assert "revoked by an administrator" in caplog.text
    assert "cred-1" not in caplog.text


async def test_a_revocation_after_connecting_exits_with_3(
    server: FakeServer, tmp_path: Path
) -> None:
    save_credential(tmp_path, server)
    server.close_after_welcome = (CloseCode.REVOKED, "credential_revoked")
    agent = Agent(config(server, tmp_path))
    assert await asyncio.wait_for(agent.run(), 5) == 3


async def test_a_protocol_error_close_is_retried_not_fatal(
    server: FakeServer, tmp_path: Path
) -> None:
    save_credential(tmp_path, server)
    server.close_after_welcome = (CloseCode.PROTOCOL_ERROR, "hello_expected")
    agent = Agent(config(server, tmp_path))
    task = asyncio.create_task(agent.run())
    # Closed after each welcome, it comes back (with backoff) over the WebSocket again.
    await until(lambda: server.events.count("hello-ws") >= 3)
    assert not task.done()
    await agent.stop()
    assert await asyncio.wait_for(task, 5) == 0


async def test_an_unknown_credential_is_renewed_with_the_token(
    server: FakeServer, tmp_path: Path
) -> None:
    state = StateDir(tmp_path / "state", platform=current_platform())
    state.path.mkdir(mode=0o700)
    state.save_credential(Credential(server=server.url, machine_id="m", credential="lost"))
    agent = Agent(config(server, tmp_path))
    task = asyncio.create_task(agent.run())
    await server.wait_for("hello-ws")
    assert "enrolled" in server.events
    loaded = state.load_credential()
    assert loaded is not None and loaded.credential == "cred-1"
    await agent.stop()
    assert await asyncio.wait_for(task, 5) == 0


async def test_an_unknown_credential_without_a_token_exits_with_3(
    server: FakeServer, tmp_path: Path
) -> None:
    state = StateDir(tmp_path / "state", platform=current_platform())
    state.path.mkdir(mode=0o700)
    state.save_credential(Credential(server=server.url, machine_id="m", credential="lost"))
    agent = Agent(config(server, tmp_path, enrollment_token=None))
    assert await asyncio.wait_for(agent.run(), 5) == 3


async def test_stop_is_quick_even_with_a_command_running(
    server: FakeServer, tmp_path: Path
) -> None:
    server.pending[3] = make_envelope("sleep 30", run_id=3, timeout_s=60)
    agent = Agent(config(server, tmp_path, transport="ws"))
    task = asyncio.create_task(agent.run())
    await server.wait_for("update-3-running")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await agent.stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert loop.time() - started < 2.5


async def test_sigterm_stops_the_agent_process_gracefully(
    server: FakeServer, tmp_path: Path
) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from wcms.agent.config import AgentConfig\n"
        "from wcms.agent.main import run_agent\n"
        f"sys.exit(run_agent(AgentConfig(server_url={server.url!r}, "
        f"enrollment_token='good-token', state_dir=Path({str(tmp_path / 'state')!r}), "
        "transport='ws', backoff_initial=0.01, backoff_max=0.05)))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE
    )
    await server.wait_for("heartbeat-ws")
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 5)
    assert process.returncode == 0, stderr.decode()
    assert "shutdown-ws" in server.events
    assert b"stopping (shutdown)" in stderr
    assert b"cred-1" not in stderr


async def test_a_duplicate_machine_is_explained_and_retried_not_fatal(
    server: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_credential(tmp_path, server)
    server.ws_status = 409
    agent = Agent(config(server, tmp_path, transport="ws"))
    task = asyncio.create_task(agent.run())
    await until(lambda: caplog.text.count("--machine-id") >= 2)
    assert not task.done()
    await agent.stop()
    assert await asyncio.wait_for(task, 5) == 0
