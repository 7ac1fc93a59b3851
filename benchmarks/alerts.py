"""Measure alerting on a real server: event to message, an outage's backlog, throughput.

    .venv/bin/python -m benchmarks.alerts [--samples 20] [--alerts 1000] [--down 600]
                                          [--database-url URL] [--json OUT]

Starts a `wcms server` (SQLite in a temporary directory unless --database-url; default
settings but for a 1 s heartbeat, a 10 s offline grace and no flapping), a receiver
playing a generic webhook (the tests' receiver, in this process), one real `wcms agent`
and a machine_offline rule with no pending period and no group wait, and reports:

1. event -> message: the agent killed (SIGKILL) --samples times, each time started
   again and its resolved message awaited: from the kill to the firing message at the
   receiver, and from the server's record of the machine offline (status_changed_at,
   after the offline grace) to that message: the engine and the outbox alone;
2. an outage's backlog: --alerts simulated agents (benchmarks.fleet), each in its own
   room (so each is its own alert), go dark together while the receiver is down for
   --down seconds; then: every message delivered, none twice (by X-WCMS-Delivery), the
   time from the receiver's return to the last message, the server's CPU while the
   messages wait and while they drain;
3. deliveries per second while that backlog drains, and one command's round trip to the
   real agent (POST -> result stored, `true`) idle and while the messages flow.

The figures are reported, never asserted. Every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from tests.alert_receiver import HttpReceiver, Received
from tests.procs import AgentProc, Api, ServerProc, wait_for

from benchmarks.fleet.swarm import Swarm
from benchmarks.programs import pct

HOOK = "/hook/ops"
AGENT = "bench-alert-01"


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def firing(receiver: HttpReceiver) -> list[Received]:
    return [
        r
        for r in receiver.received(HOOK)
        if r.status < 300 and r.json()["message"]["kind"] == "firing"
    ]


class FiringCount:
    """The firing messages the receiver accepted since this was made, each body read
    once (a wait that re-read every body would load the machine it measures)."""

    def __init__(self, receiver: HttpReceiver) -> None:
        self.receiver = receiver
        self.start = len(receiver.received(HOOK))
        self.read = self.start
        self.count = 0

    def __call__(self) -> int:
        got = self.receiver.received(HOOK)
        for r in got[self.read :]:
            if r.status < 300 and r.json()["message"]["kind"] == "firing":
                self.count += 1
        self.read = len(got)
        return self.count


def of_agent(receiver: HttpReceiver, kind: str) -> list[Received]:
    return [
        r
        for r in receiver.received(HOOK)
        if r.status < 300
        and r.json()["message"]["kind"] == kind
        and r.json()["alert"]["subjects"] == [AGENT]
    ]


class CpuMeter:
    """A process's CPU use over an interval, as % of one core."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start()

    def start(self) -> None:
        times = self.proc.cpu_times()
        self._cpu = times.user + times.system
        self._at = time.monotonic()

    def percent(self) -> float:
        times = self.proc.cpu_times()
        spent = times.user + times.system - self._cpu
        return round(100 * spent / max(time.monotonic() - self._at, 1e-9), 1)


def gauge(api: Api, name: str) -> float:
    """A gauge's value on the server's /metrics."""
    for line in api.client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def round_trip(api: Api) -> float:
    started = time.perf_counter()
    command = api.exec(AGENT, "true")
    out = api.wait(command["id"], timeout=30)
    assert out["done"], out
    return time.perf_counter() - started


def round_trips(api: Api, count: int) -> list[float]:
    return [round_trip(api) for _ in range(count)]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": ms(pct(values, 0.5)), "p99_ms": ms(pct(values, 0.99))}


def event_to_message(
    api: Api, server: ServerProc, receiver: HttpReceiver, work: Path, samples: int
) -> dict[str, Any]:
    token = server.token(uses=samples + 5)
    agent = AgentProc(server, work / "agent", AGENT, token=token).start()
    wait_for(lambda: api.status_of(AGENT) == "online", timeout=60, what="the agent online")
    from_kill: list[float] = []
    from_record: list[float] = []
    try:
        for n in range(samples):
            killed = time.time()
            agent.stop(kill=True)
            [message] = wait_for(
                lambda n=n: (got := of_agent(receiver, "firing"))[n:] and got[n:],
                timeout=120,
                what="the firing message",
            )
            changed = datetime.fromisoformat(api.machine(AGENT)["status_changed_at"])
            from_kill.append(message.at - killed)
            from_record.append(message.at - changed.timestamp())
            agent = AgentProc(server, work / "agent", AGENT).start()
            wait_for(
                lambda n=n: len(of_agent(receiver, "resolved")) > n,
                timeout=120,
                what="the resolved message",
            )
    except BaseException:
        agent.stop(kill=True)
        raise
    return {
        "agent": agent,
        "kill_to_message": summary(from_kill),
        "offline_recorded_to_message": summary(from_record),
        "single_runs_ms": {
            "kill_to_message": [ms(v) for v in from_kill],
            "offline_recorded_to_message": [ms(v) for v in from_record],
        },
    }


def backlog(
    api: Api, server: ServerProc, receiver: HttpReceiver, *, alerts: int, down: float
) -> dict[str, Any]:
    token = server.cli("enroll-token", "--uses", str(alerts)).stdout.split()[-1]
    swarm = Swarm(server.url, alerts, 2, prefix="dark")
    try:
        swarm.ask("enrol", token=token)
        swarm.ask("connect")
        swarm.ask("until_online", timeout=120)
        swarm.ask("heartbeats", interval=10.0)
        for n, machine_id in enumerate(swarm.ids):
            response = api.client.patch(f"/api/machines/{machine_id}", json={"room": f"R{n:04d}"})
            assert response.status_code == 200, response.text
        # Enrolled machines are offline until they connect: let those messages (and
        # their resolutions) be delivered first, so the backlog holds only the outage.
        wait_for(
            lambda: gauge(api, "wcms_alert_outbox_depth") == 0,
            timeout=300,
            interval=0.5,
            what="an empty outbox",
        )
        before = len(firing(receiver))
        counted = FiringCount(receiver)
        receiver.stop()
        for proc in swarm._procs:  # the campus's power goes: no goodbye from anyone
            proc.kill()
        meter = CpuMeter(server.proc.pid)  # type: ignore[union-attr]
        went_down = time.monotonic()
        wait_for(
            lambda: gauge(api, "wcms_alerts_firing") >= alerts,
            timeout=max(down, 120),
            what="every alert firing",
        )
        firing_after = time.monotonic() - went_down
        time.sleep(max(0.0, down - (time.monotonic() - went_down)))
        waiting_cpu = meter.percent()
        meter.start()
        flowing: list[float] = []
        stop = threading.Event()

        def commands() -> None:
            while not stop.is_set():
                flowing.append(round_trip(api))

        back = time.monotonic()
        receiver.start()
        thread = threading.Thread(target=commands, daemon=True)
        thread.start()
        wait_for(
            lambda: counted() >= alerts,
            timeout=3600,
            interval=0.2,
            what="every message delivered",
        )
        stop.set()
        thread.join(timeout=60)
        drain_cpu = meter.percent()
        got = firing(receiver)[before:]
        arrivals = sorted(r.at for r in got)
        ids = [r.headers["x-wcms-delivery"] for r in got]
        first_at = arrivals[0]
        back_wall = time.time() - (time.monotonic() - back)
        spread = arrivals[-1] - first_at
        return {
            "alerts": alerts,
            "receiver_down_s": down,
            "all_firing_after_s": round(firing_after, 1),
            "delivered": len(set(ids)),
            "doubled": len(ids) - len(set(ids)),
            "first_after_return_s": round(first_at - back_wall, 1),
            "last_after_return_s": round(arrivals[-1] - back_wall, 1),
            "deliveries_per_s": round((len(arrivals) - 1) / spread, 1) if spread else None,
            "server_cpu_pct_waiting": waiting_cpu,
            "server_cpu_pct_draining": drain_cpu,
            "command_round_trip_while_draining": summary(flowing) if flowing else None,
        }
    finally:
        swarm.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--down", type=float, default=600.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="wcms-bench-alerts-"))
    receiver = HttpReceiver().start()
    # No flapping notice: the first part kills the same agent --samples times on purpose.
    server = ServerProc(
        work / "server",
        args.database_url,
        offline_grace=10,
        alert_flap_count=min(args.samples + 10, 100),
    ).start()
    agent: AgentProc | None = None
    try:
        api = server.api()
        channel = {"name": "ops", "kind": "webhook", "url": receiver.url + HOOK}
        api.post("/api/alert-channels", channel, status=201)
        rule = {
            "name": "offline",
            "kind": "machine_offline",
            "channels": ["ops"],
            "for_s": 0,
            "group_wait_s": 0,
            "group_interval_s": 1,
        }
        api.post("/api/alert-rules", rule, status=201)
        latency = event_to_message(api, server, receiver, work, args.samples)
        agent = latency.pop("agent")
        idle = summary(round_trips(api, 30))
        outage = backlog(api, server, receiver, alerts=args.alerts, down=args.down)
        result = {
            "when": datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": f"{platform.node()} · {os.cpu_count()} cores · Python "
            + platform.python_version(),
            "database": "postgresql" if args.database_url else "sqlite",
            "settings": {"offline_grace_s": 10, "heartbeat_s": 1, **rule},
            "event_to_message": latency,
            "command_round_trip_idle": idle,
            "backlog": outage,
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if agent is not None:
            agent.stop(kill=True)
        server.stop()
        receiver.stop()


if __name__ == "__main__":
    sys.exit(main())
