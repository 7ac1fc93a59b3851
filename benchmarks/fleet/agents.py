"""Simulated agents: the real protocol models and client, many per event loop.

A simulated agent enrols through :class:`wcms.agent.client.ServerClient`, opens the
agent WebSocket with the same URL and headers as the real agent, says hello, waits
for the welcome, sends heartbeats, and answers every run like a real agent whose
action is a no-op: ``running`` then ``succeeded``. Like the real agent's journal it
remembers which (run, attempt) it started, so a run delivered twice is reported
again, never started again; the counters expose any double start.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from pydantic import ValidationError

from wcms.agent.backoff import Backoff
from wcms.agent.client import ServerClient
from wcms.agent.config import AgentConfig
from wcms.agent.errors import ServerError
from wcms.protocol import (
    TERMINAL_STATES,
    HeartbeatFrame,
    HelloFrame,
    Inventory,
    RegisterRequest,
    RunAckFrame,
    RunFrame,
    RunResult,
    RunState,
    RunUpdate,
    RunUpdateFrame,
    ShutdownFrame,
    StatusReport,
    WelcomeFrame,
    server_frame,
)
from wcms.protocol.messages import DiskInfo, DiskUsage, dump

GIB = 1024**3
# Enrolment attempts while the server answers it is busy.
ENROL_ATTEMPTS = 20


def inventory(machine_id: str) -> Inventory:
    return Inventory(
        hostname=machine_id,
        os_name="Linux",
        os_version="6.1",
        os_pretty="Debian GNU/Linux 12 (simulated)",
        arch="x86_64",
        cpu_model="Simulated CPU @ 3.0GHz",
        cpu_cores=4,
        cpu_threads=8,
        ram_total=16 * GIB,
        disks=[DiskInfo(mount="/", fstype="ext4", total=512 * GIB)],
        macs=[f"02:00:{random.randrange(2**32):08x}"[:17]],
        ips=["10.0.0.1"],
        agent_version="sim",
    )


def heartbeat_text() -> str:
    """One heartbeat frame, serialised once: the server parses it like any other."""
    status = StatusReport(
        cpu_percent=12.5,
        ram_used=6 * GIB,
        ram_total=16 * GIB,
        ram_percent=37.5,
        disks=[DiskUsage(mount="/", total=512 * GIB, used=200 * GIB, percent=39.1)],
        users=["student"],
        uptime_s=3600,
        process_count=180,
    )
    return dump(HeartbeatFrame(status=status))


@dataclass
class Counters:
    """What the agents of one worker saw; summed over workers by the orchestrator."""

    runs_started: int = 0
    runs_redelivered: int = 0
    updates_sent: int = 0
    acks: int = 0
    heartbeats_sent: int = 0
    connects: int = 0
    connect_failures: int = 0
    enrol_retries: int = 0
    # command id -> monotonic receive times (one per agent that received it)
    received: dict[int, list[float]] = field(default_factory=dict)
    # command id -> starts beyond the first on one machine: must stay zero
    doubled: Counter[int] = field(default_factory=Counter)


class SimAgent:
    """One simulated machine."""

    def __init__(self, machine_id: str, client: ServerClient, counters: Counters) -> None:
        self.machine_id = machine_id
        self.client = client
        self.counters = counters
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.online = asyncio.Event()
        self.started: set[tuple[int, int]] = set()
        self.commands: set[int] = set()
        # Like the real agent's outbox: updates not yet acknowledged, sent again on the
        # next connection.
        self.unacked: dict[tuple[int, int], str] = {}
        self.stopping = False
        # The real agent's reconnect policy: it decides how a reconnect storm spreads.
        self.backoff = Backoff(AgentConfig.backoff_initial, AgentConfig.backoff_max)

    async def enrol(self, token: str) -> str:
        request = RegisterRequest(
            enrollment_token=token, machine_id=self.machine_id, inventory=inventory(self.machine_id)
        )
        for _ in range(ENROL_ATTEMPTS - 1):
            try:
                answer = await self.client.enrol(request)
                break
            except ServerError as exc:
                # Busy (503): wait and ask again, as the real agent does.
                if exc.status < 500:
                    raise
                self.counters.enrol_retries += 1
                await asyncio.sleep(self.backoff.next_delay())
        else:
            answer = await self.client.enrol(request)
        self.backoff.reset()
        assert answer.credential is not None
        self.client.credential = answer.credential
        return answer.credential

    async def live(self, heartbeat: str) -> None:
        """Stay connected, reconnecting with the real agent's backoff, until stopped."""
        while not self.stopping:
            try:
                await self._session(heartbeat)
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError):
                self.counters.connect_failures += 1
            self.online.clear()
            self.ws = None
            if not self.stopping:
                await asyncio.sleep(self.backoff.next_delay())

    async def _session(self, heartbeat: str) -> None:
        client = self.client
        ws = await client.session.ws_connect(
            client.websocket_url, headers=client.headers(), heartbeat=None, autoping=True
        )
        try:
            await ws.send_str(dump(HelloFrame(session_id=client.session_id, inventory=None)))
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = server_frame(message.data)
                except ValidationError:
                    continue
                if isinstance(frame, WelcomeFrame):
                    self.ws = ws
                    self.counters.connects += 1
                    self.backoff.reset()
                    self.online.set()
                    for text in list(self.unacked.values()):
                        await ws.send_str(text)
                elif isinstance(frame, RunFrame):
                    await self._run(ws, frame)
                elif isinstance(frame, RunAckFrame):
                    self.counters.acks += 1
                    if frame.state in TERMINAL_STATES:
                        self.unacked.pop((frame.run_id, frame.attempt), None)
        finally:
            self.ws = None
            await ws.close()

    async def _run(self, ws: aiohttp.ClientWebSocketResponse, frame: RunFrame) -> None:
        run = frame.run
        received = time.monotonic()
        key = (run.run_id, run.attempt)
        if key in self.started:
            self.counters.runs_redelivered += 1
        else:
            self.started.add(key)
            self.counters.runs_started += 1
            if run.command_id in self.commands:
                self.counters.doubled[run.command_id] += 1
            else:
                self.commands.add(run.command_id)
                self.counters.received.setdefault(run.command_id, []).append(received)
        # The simulated run ends at once: like the real agent's outbox, which holds a
        # `running` report back for RUNNING_DELAY_S, it reports only its end.
        done = RunUpdate(
            run_id=run.run_id,
            attempt=run.attempt,
            state=RunState.SUCCEEDED,
            result=RunResult(exit_code=0, stdout="", stderr="", duration_ms=0),
        )
        text = dump(RunUpdateFrame(update=done))
        self.unacked[key] = text
        await ws.send_str(text)
        self.counters.updates_sent += 1

    async def beat(self, text: str) -> bool:
        ws = self.ws
        if ws is None or ws.closed:
            return False
        await ws.send_str(text)
        self.counters.heartbeats_sent += 1
        return True

    async def goodbye(self) -> None:
        self.stopping = True
        ws = self.ws
        if ws is not None and not ws.closed:
            await ws.send_str(dump(ShutdownFrame(reason="shutdown")))
            await ws.close()


def new_client(session: aiohttp.ClientSession, url: str) -> ServerClient:
    return ServerClient(session, url, session_id=uuid.uuid4().hex)
