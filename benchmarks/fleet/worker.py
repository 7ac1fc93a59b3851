"""A worker process: a slice of the simulated fleet on one event loop.

The orchestrator sends requests over a pipe (``{"op": ..., ...}``) and waits for one
answer each. Agents live on the loop between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from benchmarks.fleet.agents import Counters, SimAgent, heartbeat_text, new_client

ENROL_CONCURRENCY = 8


class Worker:
    def __init__(self, url: str, machine_ids: list[str]) -> None:
        self.url = url
        self.machine_ids = machine_ids
        self.counters = Counters()
        self.session: aiohttp.ClientSession | None = None
        self.agents: list[SimAgent] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.beating: asyncio.Task[None] | None = None
        self.heartbeat = heartbeat_text()

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.session = aiohttp.ClientSession(connector=connector)
        self.agents = [
            SimAgent(machine_id, new_client(self.session, self.url), self.counters)
            for machine_id in self.machine_ids
        ]

    async def enrol(self, token: str, credentials: dict[str, str]) -> dict[str, Any]:
        """Enrol agents without a stored credential; returns every agent's credential."""
        gate = asyncio.Semaphore(ENROL_CONCURRENCY)

        async def one(agent: SimAgent) -> None:
            known = credentials.get(agent.machine_id)
            if known:
                agent.client.credential = known
                return
            async with gate:
                await agent.enrol(token)

        started = time.monotonic()
        await asyncio.gather(*(one(agent) for agent in self.agents))
        return {
            "seconds": time.monotonic() - started,
            "credentials": {a.machine_id: a.client.credential for a in self.agents},
        }

    async def connect(self) -> dict[str, Any]:
        """Start every agent at once; answer when all are welcomed."""
        started = time.monotonic()
        for agent in self.agents:
            agent.stopping = False
            self.tasks.append(asyncio.create_task(agent.live(self.heartbeat)))
        await asyncio.gather(*(agent.online.wait() for agent in self.agents))
        return {"seconds": time.monotonic() - started, "started_at": started}

    async def until_online(self, timeout: float) -> dict[str, Any]:
        """Wait until every agent is connected again (after a server restart)."""
        waits = asyncio.gather(*(agent.online.wait() for agent in self.agents))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waits, timeout)
        return {"online": sum(agent.online.is_set() for agent in self.agents)}

    def start_heartbeats(self, interval: float) -> dict[str, Any]:
        """Each agent beats every ``interval`` seconds at a random phase, as a fleet
        of independent machines does."""
        self.stop_heartbeats()
        self.beating = asyncio.create_task(self._beat(interval))
        return {}

    def stop_heartbeats(self) -> dict[str, Any]:
        if self.beating is not None:
            self.beating.cancel()
            self.beating = None
        return {}

    async def _beat(self, interval: float) -> None:
        tick = 0.05
        agents = list(self.agents)
        random.shuffle(agents)
        per_tick = len(agents) * tick / interval
        owed = 0.0
        index = 0
        next_at = time.monotonic()
        while True:
            owed += per_tick
            while owed >= 1:
                owed -= 1
                await agents[index].beat(self.heartbeat)
                index = (index + 1) % len(agents)
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def stats(self) -> dict[str, Any]:
        c = self.counters
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "online": sum(agent.online.is_set() for agent in self.agents),
            "runs_started": c.runs_started,
            "runs_redelivered": c.runs_redelivered,
            "updates_sent": c.updates_sent,
            "acks": c.acks,
            "heartbeats_sent": c.heartbeats_sent,
            "connects": c.connects,
            "connect_failures": c.connect_failures,
            "enrol_retries": c.enrol_retries,
            "doubled": {str(k): v for k, v in c.doubled.items()},
            "received": {str(k): v for k, v in c.received.items()},
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }

    async def goodbye(self) -> dict[str, Any]:
        self.stop_heartbeats()
        await asyncio.gather(*(agent.goodbye() for agent in self.agents), return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self.session is not None:
            await self.session.close()
        return {}


async def serve(pipe: Connection, url: str, machine_ids: list[str]) -> None:
    worker = Worker(url, machine_ids)
    await worker.open()
    loop = asyncio.get_running_loop()
    while True:
        request: dict[str, Any] = await loop.run_in_executor(None, pipe.recv)
        op = request.pop("op")
        try:
            if op == "enrol":
                answer = await worker.enrol(request["token"], request.get("credentials", {}))
            elif op == "connect":
                answer = await worker.connect()
            elif op == "until_online":
                answer = await worker.until_online(request["timeout"])
            elif op == "heartbeats":
                answer = worker.start_heartbeats(request["interval"])
            elif op == "stop_heartbeats":
                answer = worker.stop_heartbeats()
            elif op == "stats":
                answer = worker.stats()
            elif op == "goodbye":
                answer = await worker.goodbye()
                pipe.send({"ok": True, **answer})
                return
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # report it to the orchestrator, which stops the run
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        pipe.send({"ok": "error" not in answer, **answer})


def main(pipe: Connection, url: str, machine_ids: list[str]) -> None:
    """Process entry point."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(serve(pipe, url, machine_ids))
    except ImportError:
        asyncio.run(serve(pipe, url, machine_ids))
