"""The scenarios: each takes a running bench and returns its figures."""

from __future__ import annotations

import math
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.fleet.server import Database, ServerUnderTest
from benchmarks.fleet.swarm import Swarm

MB = 1024 * 1024


@dataclass
class Options:
    agents: int = 1000
    workers: int = 4
    database: str = "sqlite"
    port: int = 18900
    interval: float = 0.75
    duration: float = 20.0
    samples: int = 100
    idle: float = 60.0


@dataclass
class Bench:
    """A server with a fleet of simulated agents enrolled (and, once asked, connected)."""

    options: Options
    work: Path
    database: Database
    server: ServerUnderTest
    swarm: Swarm | None = None
    token: str = ""
    connected: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, options: Options) -> Bench:
        work = Path(tempfile.mkdtemp(prefix="wcms-fleet-"))
        database = Database(options.database, work / "data")
        database.create()
        bench = cls(options, work, database, ServerUnderTest(work, database, options.port))
        bench.server.start()
        bench.token = bench.server.cli(
            "enroll-token", "--uses", str(max(options.agents, 1) + 5), "--ttl", "1h"
        )
        return bench

    def enrol(self) -> None:
        if self.swarm is not None or self.options.agents == 0:
            return
        self.figures["server_rss_empty_mb"] = self.server.rss() / MB
        self.swarm = Swarm(self.server.url, self.options.agents, self.options.workers)
        started = time.monotonic()
        self.swarm.ask("enrol", token=self.token)
        self.figures["enrol_s"] = time.monotonic() - started
        self.figures["enrol_retries"] = self.swarm.stats().get("enrol_retries", 0)

    def ensure_connected(self) -> None:
        if not self.connected:
            connect_storm(self)

    def close(self) -> None:
        if self.swarm is not None:
            self.swarm.close()
        self.server.stop()
        self.database.drop()
        kept = Path("benchmarks/results/last-server.log")
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.server.log_path, kept)
        shutil.rmtree(self.work, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], *, timeout: float, every: float = 0.05) -> float:
    """Poll until ``predicate`` holds; returns the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not reached in {timeout} s")
        time.sleep(every)
    return time.monotonic()


def in_background(work: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- 1. connect storm ---------------------------------------------------------------


def connect_storm(bench: Bench) -> dict[str, Any]:
    """Every agent connects at once; time until the server counts all of them."""
    bench.enrol()
    assert bench.swarm is not None
    n = bench.options.agents
    rss_before = bench.server.rss()
    started = time.monotonic()
    thread = in_background(lambda: bench.swarm.ask("connect"))
    done = wait_until(lambda: bench.server.connected() >= n, timeout=300, every=0.1)
    thread.join()
    bench.connected = True
    time.sleep(3)  # let the hello/inventory writes settle before weighing the process
    rss_after = bench.server.rss()
    return {
        "agents": n,
        "connect_storm_s": done - started,
        "server_rss_mb": rss_after / MB,
        "server_rss_per_agent_kb": (rss_after - rss_before) / n / 1024,
        "server_rss_total_per_agent_kb": rss_after / n / 1024,
    }


# --- 2. steady heartbeats ----------------------------------------------------------


def heartbeats(bench: Bench) -> dict[str, Any]:
    """N agents beat every ``interval``; what the server persists, at what cost."""
    bench.ensure_connected()
    assert bench.swarm is not None
    options, server = bench.options, bench.server
    rows_before = bench.database.count("status_history")
    sent_before = bench.swarm.stats().get("heartbeats_sent", 0)
    bench.swarm.ask("heartbeats", interval=options.interval)
    time.sleep(min(3.0, options.duration / 4))  # warm up: every agent has beaten once
    metrics0, cpu0, t0 = server.metrics(), server.cpu_seconds(), time.monotonic()
    rows0 = bench.database.count("status_history")
    time.sleep(options.duration)
    rows1 = bench.database.count("status_history")
    metrics1, cpu1, t1 = server.metrics(), server.cpu_seconds(), time.monotonic()
    bench.swarm.ask("stop_heartbeats")
    sent = bench.swarm.stats().get("heartbeats_sent", 0) - sent_before
    # What the server could not keep up with is still on its way (socket buffers, the
    # writer's queue): the next scenarios must not measure a server busy with it.
    stopped = time.monotonic()
    try:
        drained = (
            wait_until(
                lambda: bench.database.count("status_history") - rows_before >= sent,
                timeout=180,
                every=0.5,
            )
            - stopped
        )
    except TimeoutError:
        drained = math.nan
    time.sleep(1)
    rows = bench.database.count("status_history") - rows_before
    written = metrics1["wcms_heartbeats_written_total"] - metrics0["wcms_heartbeats_written_total"]
    return {
        "heartbeat_interval_s": options.interval,
        "heartbeats_offered_per_s": bench.options.agents / options.interval,
        # Rows that reached the database in the window: the truth, however slowly
        # /metrics answers under load.
        "heartbeats_persisted_per_s": (rows1 - rows0) / (t1 - t0),
        "heartbeats_counted_per_s": written / (t1 - t0),
        "server_cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
        "heartbeat_p99_ms": histogram_quantile(
            metrics0, metrics1, "wcms_heartbeat_latency_seconds", 0.99
        )
        * 1000,
        "heartbeats_sent": sent,
        "heartbeat_backlog_drain_s": drained,
        "heartbeat_rows_written": rows,
        "heartbeat_rows_match": rows == sent,
    }


def histogram_quantile(m0: dict[str, float], m1: dict[str, float], name: str, q: float) -> float:
    """The ``q`` quantile of a Prometheus histogram between two scrapes (bucket bound)."""
    buckets: list[tuple[float, float]] = []
    for key, value in m1.items():
        if key.startswith(name + "_bucket{"):
            bound = key.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), value - m0.get(key, 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    wanted = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= wanted:
            return bound
    return float("inf")


# --- 3. one command ---------------------------------------------------------------


def one_command(bench: Bench) -> dict[str, Any]:
    """One `execute` to one machine at a time, while the whole fleet is connected."""
    bench.ensure_connected()
    assert bench.swarm is not None
    api = bench.server.api
    sent: dict[int, float] = {}
    stored: list[float] = []
    for _ in range(bench.options.samples):
        target = random.choice(bench.swarm.ids)
        body = {"selector": target, "type": "execute", "payload": {"command": "true"}}
        t0 = time.monotonic()
        command_id = api.post("/api/commands", json=body).raise_for_status().json()["id"]
        sent[command_id] = t0
        done = api.get(f"/api/commands/{command_id}", params={"wait": 30}).json()
        stored.append(time.monotonic() - t0)
        assert done["done"] and done["runs"][0]["state"] == "succeeded", done
    received = bench.swarm.stats()["received"]
    to_agent = [min(received[c]) - t0 for c, t0 in sent.items()]
    return {
        "command_samples": len(sent),
        "command_to_agent_p50_ms": statistics.median(to_agent) * 1000,
        "command_to_agent_p99_ms": percentile(to_agent, 99) * 1000,
        "command_to_result_p50_ms": statistics.median(stored) * 1000,
        "command_to_result_p99_ms": percentile(stored, 99) * 1000,
    }


# --- 4. broadcast -------------------------------------------------------------------


def broadcast(bench: Bench) -> dict[str, Any]:
    """One `execute` to `all`: time until the last result is stored; nothing lost or
    doubled."""
    bench.ensure_connected()
    assert bench.swarm is not None
    n = bench.options.agents
    started_before = bench.swarm.stats()["runs_started"]
    api = bench.server.api
    body = {"selector": "all", "type": "execute", "payload": {"command": "true"}}
    t0 = time.monotonic()
    command_id = api.post("/api/commands", json=body).raise_for_status().json()["id"]
    created = time.monotonic()
    # Done when the last result is stored: the summary says so without carrying 10,000
    # runs; then every run is fetched to check that none is missing.
    api.get(f"/api/commands/{command_id}", params={"wait": 120, "runs": False})
    finished = time.monotonic()
    done = api.get(f"/api/commands/{command_id}").json()
    stats = bench.swarm.stats()
    received = stats["received"].get(command_id, [])
    states = [run["state"] for run in done["runs"]]
    return {
        "broadcast_targets": len(states),
        "broadcast_create_s": created - t0,
        "broadcast_last_received_s": (max(received) - t0) if received else float("nan"),
        "broadcast_all_stored_s": finished - t0,
        "broadcast_succeeded": states.count("succeeded"),
        "broadcast_missing": n - states.count("succeeded"),
        "broadcast_agents_started": stats["runs_started"] - started_before,
        "broadcast_doubled": stats["doubled"].get(command_id, 0),
    }


# --- 5. reconnect storm -------------------------------------------------------------


def reconnect_storm(bench: Bench) -> dict[str, Any]:
    """Restart the server under a connected fleet with a broadcast in flight."""
    bench.ensure_connected()
    assert bench.swarm is not None
    n = bench.options.agents
    server, api = bench.server, bench.server.api
    started_before = bench.swarm.stats()["runs_started"]
    body = {"selector": "all", "type": "execute", "payload": {"command": "true"}}
    command_id = api.post("/api/commands", json=body).raise_for_status().json()["id"]
    stopped_at = time.monotonic()
    server.stop()
    server.start()
    up_at = time.monotonic()
    back = wait_until(lambda: server.connected() >= n, timeout=300, every=0.1)
    done = api.get(f"/api/commands/{command_id}", params={"wait": 120}).json()
    stats = bench.swarm.stats()
    states = [run["state"] for run in done["runs"]]
    return {
        "reconnect_server_down_s": up_at - stopped_at,
        "reconnect_all_back_after_start_s": back - up_at,
        "reconnect_all_back_after_stop_s": back - stopped_at,
        "reconnect_command_states": dict(Counter(states)),
        "reconnect_command_succeeded": states.count("succeeded"),
        "reconnect_command_lost": n - states.count("succeeded"),
        "reconnect_agents_started": stats["runs_started"] - started_before,
        "reconnect_command_doubled": stats["doubled"].get(command_id, 0),
    }


# --- 6. agent footprint --------------------------------------------------------------


def agent_footprint(bench: Bench) -> dict[str, Any]:
    """A real `wcms agent`, default settings, idle: RSS and CPU."""
    server = bench.server
    state = bench.work / "real-agent"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wcms",
            "agent",
            "--server",
            server.url,
            "--token",
            bench.token,
            "--state-dir",
            str(state),
            "--machine-id",
            "footprint-pc",
            "--power-backend",
            f"record:{state / 'power.jsonl'}",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = server.api

        def online() -> bool:
            answer = api.get("/api/machines/footprint-pc")
            return answer.status_code == 200 and answer.json()["status"] == "online"

        wait_until(online, timeout=60, every=0.2)
        agent = psutil.Process(proc.pid)
        time.sleep(5)  # past start-up work: inventory, first heartbeat
        cpu0, t0 = sum(agent.cpu_times()[:2]), time.monotonic()
        peak = 0
        while time.monotonic() - t0 < bench.options.idle:
            time.sleep(1)
            peak = max(peak, agent.memory_info().rss)
        cpu1, t1 = sum(agent.cpu_times()[:2]), time.monotonic()
        return {
            "agent_idle_s": t1 - t0,
            "agent_rss_mb": agent.memory_info().rss / MB,
            "agent_rss_peak_mb": peak / MB,
            "agent_cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


SCENARIOS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "connect": connect_storm,
    "heartbeats": heartbeats,
    "command": one_command,
    "broadcast": broadcast,
    "reconnect": reconnect_storm,
    "footprint": agent_footprint,
}
