"""Measure program supervision on real processes: footprint, restart, hang, stop, console.

    .venv/bin/python -m benchmarks.programs [--crashes 20] [--seconds 60] [--json OUT]

Starts a `wcms server` (SQLite in a temporary directory, default heartbeat settings) and
one `wcms agent` (log level warning), defines programs over the admin API whose command
is the fake game server (tests/fakegame.py), and reports:

1. footprint: the agent supervising 5 fakes (RCON probe every 10 s), all running: the
   agent's CPU (% of one core, psutil cpu_times over --seconds) and RSS, the agent
   process alone (not its children);
2. crash -> running: `crash` typed into the console (program_send; the fake exits 1),
   --crashes times, backoff 1 s: from the process gone (psutil) to the next `running`,
   by the agent's own event timestamps and by the wall clock until the API shows it;
3. hang -> detected: `hang` sent (RCON), probe every 1 s, grace 1 s, 3 misses, timeout
   0.5 s: until the agent's `hang` event;
4. stop -> tree gone: a minecraft-preset fake with a child process, stopped through the
   API (console `stop`): until every process of its tree is gone (psutil), and the
   agent's stopping -> stopped timestamps;
5. console throughput: `spam N RATE` (N numbered lines at RATE/s for --spam-seconds)
   followed by one real `wcms program logs M/N --follow`: lines/s received, lines
   missing or doubled, the agent's CPU meanwhile.

The figures are reported, never asserted. Every process started is killed at the end
(the fake games by their process group: programs outlive their agent by design).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from tests.procs import ROOT, Api, ServerProc, free_port, process_gone, wait_for

FAKEGAME = ROOT / "tests" / "fakegame.py"
MACHINE = "bench-games"
MB = 1024 * 1024
READY = r"^Done \("
# The marker the agent puts in a followed console for the lines it did not send.
LEFT_OUT = re.compile(r"^\[\.\.\. (\d+) lines left out")
# Crashes come back after 1 s and never count as a crash loop.
FAST_BACKOFF = {
    "initial_s": 1,
    "max_s": 1,
    "loop_crashes": 1000,
    "loop_window_s": 60,
    "healthy_s": 3600,
}


# --- small helpers -------------------------------------------------------------------


def ts(value: str) -> float:
    """An API timestamp as seconds since the epoch."""
    found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found.timestamp()


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50_s": round(statistics.median(values), 3),
        "p95_s": round(pct(values, 0.95), 3),
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
        "n": len(values),
    }


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class Bench:
    """The server, the agent, the admin API, and the programs defined on them."""

    def __init__(self, work: Path, *, profile: Path | None) -> None:
        self.work = work
        self.server = ServerProc(work / "server", None, heartbeat_interval=30, offline_grace=10)
        self.profile = profile
        self.agent: subprocess.Popen[bytes] | None = None
        self.api: Api | None = None
        self.followers: list[subprocess.Popen[str]] = []

    # Processes.

    def start(self) -> None:
        self.server.start()
        self.api = self.server.api()
        token = self.server.token(uses=5)
        state = self.work / "agent"
        state.mkdir(parents=True, exist_ok=True)
        profile = ["-m", "cProfile", "-o", str(self.profile)] if self.profile else []
        log = open(self.work / "agent.log", "ab")  # noqa: SIM115 - handed to the child
        self.agent = subprocess.Popen(
            [
                sys.executable,
                *profile,
                "-m",
                "wcms",
                "agent",
                "--server",
                self.server.url,
                "--token",
                token,
                "--state-dir",
                str(state),
                "--machine-id",
                MACHINE,
                "--power-backend",
                f"record:{state / 'power.jsonl'}",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: self.client.status_of(MACHINE) == "online", timeout=60, what="agent online"
        )

    @property
    def client(self) -> Api:
        assert self.api is not None
        return self.api

    @property
    def agent_process(self) -> psutil.Process:
        assert self.agent is not None
        return psutil.Process(self.agent.pid)

    def close(self) -> None:
        for follower in self.followers:
            with contextlib.suppress(ProcessLookupError):
                follower.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                follower.wait(timeout=5)
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        self.kill_games()
        self.server.stop()

    def kill_games(self) -> None:
        """Every fake game (and its children: they share its process group) of this run."""
        mark = str(self.work)
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            if process.pid == os.getpid() or not any(mark in part for part in cmdline):
                continue
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(psutil.Error):
                    process.kill()

    # Programs.

    def game(self, name: str, *args: str) -> list[str]:
        log = self.work / "games" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-u", str(FAKEGAME), "--log", str(log), *args]

    def add(self, name: str, command: list[str], **fields: Any) -> None:
        body = {"machine": MACHINE, "name": name, "command": command, **fields}
        self.client.post("/api/programs", body, status=201)

    def act(self, name: str, action: str) -> None:
        response = self.client.client.post(f"/api/programs/{MACHINE}/{name}/{action}")
        assert response.status_code in (200, 202), response.text

    def program(self, name: str) -> dict[str, Any]:
        return self.client.get(f"/api/programs/{MACHINE}/{name}")  # type: ignore[no-any-return]

    def events(self, name: str, after: int = 0) -> list[dict[str, Any]]:
        found = self.client.get(f"/api/programs/{MACHINE}/{name}/events")
        return sorted((e for e in found if e["seq"] > after), key=lambda e: e["seq"])

    def last_seq(self, name: str) -> int:
        return max((e["seq"] for e in self.events(name)), default=0)

    def wait_state(self, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(  # type: ignore[no-any-return]
            lambda: (p := self.program(name))["state"] == state and p,
            timeout=timeout,
            interval=0.01,
            what=f"{name} {state}",
        )

    def send(self, name: str, text: str) -> dict[str, Any]:
        sent = self.client.command(MACHINE, "program_send", payload={"name": name, "text": text})
        return self.client.wait(sent["id"])

    def cancel_followers(self) -> None:
        """End the agent's follow runs left by a follower that was killed."""
        for command in self.client.get("/api/commands", params={"limit": 50}):
            if command.get("type") == "program_logs" and not command.get("done"):
                self.client.client.post(f"/api/commands/{command['id']}/cancel")


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# --- 1. footprint --------------------------------------------------------------------


def footprint(bench: Bench, *, seconds: float, settle: float) -> dict[str, Any]:
    names = [f"fp{i}" for i in range(1, 6)]
    time.sleep(3)
    rss_before = bench.agent_process.memory_info().rss
    for name in names:
        port = free_port()
        bench.add(
            name,
            bench.game(name, "--rcon-port", str(port), "--rcon-password", "pw"),
            preset="generic",
            probe=f"rcon://:pw@127.0.0.1:{port}",
            probe_interval_s=10,
        )
        bench.act(name, "start")
    for name in names:
        bench.wait_state(name, "running", timeout=60)
    agent = bench.agent_process
    time.sleep(settle)
    rss_peak = 0
    cpu0, t0 = cpu_seconds(agent), time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
        rss_peak = max(rss_peak, agent.memory_info().rss)
    cpu1, t1 = cpu_seconds(agent), time.monotonic()
    rss = agent.memory_info()
    running = sum(bench.program(name)["state"] == "running" for name in names)
    for name in names:
        bench.act(name, "stop")
    for name in names:
        bench.wait_state(name, "stopped", timeout=60)
    return {
        "programs": len(names),
        "programs_running_at_end": running,
        "window_s": round(t1 - t0, 1),
        "settle_s": settle,
        "agent_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "agent_rss_mb": round(rss.rss / MB, 1),
        "agent_rss_mb_before_programs": round(rss_before / MB, 1),
        "agent_rss_peak_mb": round(rss_peak / MB, 1),
        "agent_uss_mb": round(agent.memory_full_info().uss / MB, 1),
    }


# --- 2. crash -> running -------------------------------------------------------------


def fake_boot(bench: Bench, *, count: int = 5) -> list[float]:
    """The fake game alone, without an agent: from its spawn to its ready line."""
    found = []
    for _ in range(count):
        t0 = time.monotonic()
        proc = subprocess.Popen(
            bench.game("boot"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if re.search(READY, line):
                found.append(time.monotonic() - t0)
                break
        proc.kill()
        proc.wait()
    return found


def crashes(bench: Bench, *, count: int) -> dict[str, Any]:
    name = "crashy"
    bench.add(
        name,
        bench.game(name),
        preset="generic",
        ready_line=READY,
        restart="on-crash",
        backoff=FAST_BACKOFF,
    )
    bench.act(name, "start")
    bench.wait_state(name, "running")
    agent_side, wall, detect, backoff, boot, api_lag = [], [], [], [], [], []
    for _ in range(count):
        before = bench.wait_state(name, "running")
        pid = before["pid"]
        seq = bench.last_seq(name)
        in_thread(lambda: bench.send(name, "crash"))
        gone_at = wait_for(
            lambda pid=pid: process_gone(pid) and time.time(),
            timeout=30,
            interval=0.001,
            what="crash",
        )
        wait_for(
            lambda pid=pid: (p := bench.program(name))["state"] == "running" and p["pid"] != pid,
            timeout=30,
            interval=0.01,
            what="running again",
        )
        shown_at = time.time()
        found = wait_for(
            lambda seq=seq: (
                (e := bench.events(name, seq)) and any(x["to"] == "running" for x in e) and e
            ),
            timeout=10,
            what="the running event",
        )
        crash = next(e for e in found if e["reason"] == "crash")
        starting = next(e for e in found if e["to"] == "starting" and e["seq"] > crash["seq"])
        running = next(e for e in found if e["to"] == "running" and e["seq"] > starting["seq"])
        crash_at, starting_at, running_at = ts(crash["at"]), ts(starting["at"]), ts(running["at"])
        agent_side.append(running_at - gone_at)
        wall.append(shown_at - gone_at)
        detect.append(crash_at - gone_at)
        backoff.append(starting_at - crash_at)
        boot.append(running_at - starting_at)
        api_lag.append(shown_at - running_at)
        time.sleep(0.2)
    last = bench.program(name)
    bench.act(name, "stop")
    bench.wait_state(name, "stopped")
    return {
        "crashes": count,
        "how": "'crash' typed on the console (program_send): the fake exits 1",
        "backoff_s": FAST_BACKOFF["initial_s"],
        "gone_to_running_agent": spread(agent_side),
        "gone_to_running_api": spread(wall),
        "gone_to_crash_event": spread(detect),
        "crash_to_starting": spread(backoff),
        "starting_to_running": spread(boot),
        "running_event_to_api": spread(api_lag),
        "fake_boot_alone": spread(fake_boot(bench)),
        "restarts_counted": last["restarts"],
        "state_after": last["state"],
    }


# --- 3. hang -> detected -------------------------------------------------------------


def hangs(bench: Bench, *, count: int) -> dict[str, Any]:
    name = "hangy"
    port = free_port()
    interval, grace, failures, timeout = 1.0, 1.0, 3, 0.5
    bench.add(
        name,
        bench.game(name, "--rcon-port", str(port), "--rcon-password", "pw"),
        preset="generic",
        probe=f"rcon://:pw@127.0.0.1:{port}",
        probe_interval_s=interval,
        probe_grace_s=grace,
        probe_failures=failures,
        probe_timeout_s=timeout,
        backoff=FAST_BACKOFF,
    )
    bench.act(name, "start")
    detected, upper, windows, machine_cpu = [], [], [], []
    for _ in range(count):
        before = bench.wait_state(name, "running")
        time.sleep(grace + 2 * interval)  # past the grace, a probe answered
        seq = bench.last_seq(name)
        t0 = time.time()
        psutil.cpu_percent(None)
        bench.send(name, "hang")
        t1 = time.time()
        found = wait_for(
            lambda seq=seq: [e for e in bench.events(name, seq) if e["reason"] == "hang"],
            timeout=60,
            interval=0.05,
            what="the hang event",
        )
        hang_at = ts(found[0]["at"])
        machine_cpu.append(psutil.cpu_percent(None))
        detected.append(hang_at - t1)
        upper.append(hang_at - t0)
        windows.append(t1 - t0)
        wait_for(
            lambda pid=before["pid"]: (
                (p := bench.program(name))["state"] == "running" and p["pid"] != pid
            ),
            timeout=60,
            interval=0.05,
            what="restarted after the hang",
        )
    bench.act(name, "stop")
    bench.wait_state(name, "stopped")
    return {
        "hangs": count,
        "probe": {
            "interval_s": interval,
            "grace_s": grace,
            "failures": failures,
            "timeout_s": timeout,
        },
        "reference_s": grace + failures * interval,
        "hang_sent_to_hang_event": spread(detected),
        "hang_sent_upper_bound": spread(upper),
        "send_window_max_s": round(max(windows), 3),
        "detected_s_each": [round(x, 2) for x in detected],
        # The supervisor looks every 2 s, every 10 s while the machine is over 80 %.
        "machine_cpu_percent_each": machine_cpu,
    }


# --- 4. stop -> tree gone ------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def stops(bench: Bench, *, count: int) -> dict[str, Any]:
    name = "mc"
    port = free_port()
    bench.add(
        name,
        bench.game(name, "--slp-port", str(port), "--spawn-child"),
        preset="minecraft",
        probe=f"minecraft://127.0.0.1:{port}",
        backoff=FAST_BACKOFF,
    )
    gone, to_stopping, stopping_to_stopped, request_to_stopped, sizes = [], [], [], [], []
    reason = None
    for _ in range(count):
        bench.act(name, "start")
        running = bench.wait_state(name, "running", timeout=60)
        pid = running["pid"]
        members = wait_for(lambda pid=pid: len(t := tree(pid)) >= 2 and t, what="the child")
        sizes.append(len(members))
        seq = bench.last_seq(name)
        t0 = time.time()
        in_thread(lambda: bench.act(name, "stop"))
        gone_at = wait_for(
            lambda members=members: all(process_gone(p.pid) for p in members) and time.time(),
            timeout=120,
            interval=0.002,
            what="the tree gone",
        )
        found = wait_for(
            lambda seq=seq: (
                (e := bench.events(name, seq)) and any(x["to"] == "stopped" for x in e) and e
            ),
            timeout=30,
            what="the stopped event",
        )
        stopping = next(e for e in found if e["to"] == "stopping")
        stopped = next(e for e in found if e["to"] == "stopped")
        gone.append(gone_at - t0)
        to_stopping.append(ts(stopping["at"]) - t0)
        stopping_to_stopped.append(ts(stopped["at"]) - ts(stopping["at"]))
        request_to_stopped.append(ts(stopped["at"]) - t0)
        reason = stopped["reason"]
        bench.wait_state(name, "stopped")
    return {
        "stops": count,
        "how": "POST /api/programs/M/mc/stop; minecraft preset: say, save-all, stop",
        "tree_size": max(sizes),
        "request_to_tree_gone": spread(gone),
        "request_to_stopping_event": spread(to_stopping),
        "stopping_to_stopped_event": spread(stopping_to_stopped),
        "request_to_stopped_event": spread(request_to_stopped),
        "reason": reason,
    }


# --- 5. console throughput -----------------------------------------------------------


class Follower:
    """One `wcms program logs M/N --follow` process, its lines with their arrival time."""

    def __init__(self, bench: Bench, name: str) -> None:
        env = {**os.environ, "WCMS_URL": bench.server.url, "WCMS_API_KEY": bench.server.key}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wcms",
                "program",
                "logs",
                f"{MACHINE}/{name}",
                "--follow",
                "--lines",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        bench.followers.append(self.proc)
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        in_thread(self._read)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append((time.time(), line.rstrip("\n")))

    def seen(self, text: str) -> bool:
        with self._lock:
            return any(line == text for _, line in self.lines)

    def snapshot(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.lines)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def throughput(bench: Bench, *, rates: list[int], seconds: float) -> dict[str, Any]:
    name = "spammy"
    bench.add(name, bench.game(name), preset="generic", backoff=FAST_BACKOFF)
    bench.act(name, "start")
    bench.wait_state(name, "running")
    agent = bench.agent_process
    assert bench.server.proc is not None
    server = psutil.Process(bench.server.proc.pid)
    results = []
    for rate in rates:
        total = int(rate * seconds)
        follower = Follower(bench, name)
        mark = f"mark-{rate}"
        deadline = time.monotonic() + 60
        started = time.monotonic()
        while not follower.seen(mark) and time.monotonic() < deadline:
            bench.send(name, f"echo {mark}")
            with contextlib.suppress(AssertionError):
                wait_for(lambda f=follower, m=mark: f.seen(m), timeout=2, interval=0.02)
        follow_ready_s = time.monotonic() - started
        pattern = re.compile(rf"^spam (\d+)/{total}$")
        cpu0, scpu0, t0 = cpu_seconds(agent), cpu_seconds(server), time.time()
        bench.send(name, f"spam {total} {rate}")
        time.sleep(max(0.0, t0 + seconds - time.time()))
        t1 = time.time()
        cpu1, scpu1 = cpu_seconds(agent), cpu_seconds(server)
        # A line after the flood: lines the agent left out are announced by a marker
        # before the next line it lets through.
        end_mark = f"end-{rate}"
        deadline = time.monotonic() + 30
        while not follower.seen(end_mark) and time.monotonic() < deadline:
            bench.send(name, f"echo {end_mark}")
            with contextlib.suppress(AssertionError):
                wait_for(lambda f=follower, m=end_mark: f.seen(m), timeout=2, interval=0.02)
        time.sleep(1.0)  # what comes after (a doubled line)
        follower.stop()
        bench.cancel_followers()
        lines = follower.snapshot()
        (bench.work / f"follow-{rate}.txt").write_text(
            "".join(f"{at:.3f} {line}\n" for at, line in lines)
        )
        got = [(at, int(m.group(1))) for at, line in lines if (m := pattern.match(line))]
        left_out = sum(int(m.group(1)) for _, line in lines if (m := LEFT_OUT.search(line)))
        counts = Counter(number for _, number in got)
        arrived = [at for at, _ in got]
        numbers = sorted(counts)
        gaps = sum(1 for a, b in itertools.pairwise(numbers) if b > a + 1)
        gaps += (numbers[0] > 1 if numbers else 0) + (numbers[-1] < total if numbers else 0)
        results.append(
            {
                "rate_offered": rate,
                "lines_offered": total,
                "lines_received": len(got),
                "lines_per_s_received": (
                    round(len(got) / (max(arrived) - t0), 1) if arrived else None
                ),
                "missing": total - len(counts),
                "left_out_announced": left_out,
                "missing_unannounced": total - len(counts) - left_out,
                "doubled": sum(c - 1 for c in counts.values() if c > 1),
                "missing_runs_of_lines": gaps,
                "last_line_seen": f"spam {total}/{total}" in {line for _, line in lines},
                "last_line_after_start_s": round(max(arrived) - t0, 2) if arrived else None,
                "end_mark_seen": follower.seen(end_mark),
                "agent_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
                "server_cpu_percent": round(100 * (scpu1 - scpu0) / (t1 - t0), 1),
                "cpu_window_s": round(t1 - t0, 1),
                "follow_ready_s": round(follow_ready_s, 2),
                "follow_runs": follower_runs(bench),
            }
        )
        time.sleep(1.0)
    bench.act(name, "stop")
    bench.wait_state(name, "stopped")
    return {"seconds_per_rate": seconds, "rates": results}


_seen_runs: set[int] = set()


def follower_runs(bench: Bench) -> int:
    """The program_logs commands created since the last call (a follower's runs)."""
    found = {
        c["id"]
        for c in bench.client.get("/api/commands", params={"limit": 500})
        if c.get("type") == "program_logs"
    }
    new = found - _seen_runs
    _seen_runs.update(found)
    return len(new)


# --- the table -----------------------------------------------------------------------


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    fp = result.get("footprint")
    if fp:
        out.append(("5 programs: agent CPU (% of a core)", "≤ 1 %", f"{fp['agent_cpu_percent']} %"))
        out.append(("5 programs: agent RSS", "≤ 45 MB", f"{fp['agent_rss_mb']} MB"))
    cr = result.get("crash")
    if cr:
        a, w = cr["gone_to_running_agent"], cr["gone_to_running_api"]
        target = f"≤ {cr['backoff_s'] + 0.5} s"
        for label, s in (("agent events", a), ("API shows it", w)):
            out.append(
                (
                    f"crash → running ({label}), p50 / p95 / max",
                    target,
                    f"{s['p50_s']} / {s['p95_s']} / {s['max_s']} s",
                )
            )
        for label, key in (
            ("process gone → crash event", "gone_to_crash_event"),
            ("crash → starting (the backoff)", "crash_to_starting"),
            ("starting → running (fake boots, ready line)", "starting_to_running"),
            ("fake alone: spawn → ready line (no agent)", "fake_boot_alone"),
        ):
            s = cr[key]
            out.append((f"  {label}", "", f"{s['p50_s']} / {s['p95_s']} / {s['max_s']} s"))
    hg = result.get("hang")
    if hg:
        s = hg["hang_sent_to_hang_event"]
        out.append(
            (
                "hang → hang event, p50 / max",
                f"~ {hg['reference_s']} s (grace + 3 x 1 s)",
                f"{s['p50_s']} / {s['max_s']} s",
            )
        )
    st = result.get("stop")
    if st:
        for label, key in (
            ("stop request → tree gone (psutil)", "request_to_tree_gone"),
            ("stop request → stopping event", "request_to_stopping_event"),
            ("stopping → stopped events", "stopping_to_stopped_event"),
        ):
            s = st[key]
            out.append((f"{label}, p50 / max", "", f"{s['p50_s']} / {s['max_s']} s"))
    tp = result.get("throughput")
    if tp:
        for r in tp["rates"]:
            out.append(
                (
                    f"console {r['rate_offered']} lines/s: received/s, missing / doubled",
                    "all / 0 / 0",
                    f"{r['lines_per_s_received']}, {r['missing']} / {r['doubled']}"
                    f" of {r['lines_offered']} ({r['left_out_announced']} announced"
                    f" left out, {r['missing_unannounced']} silently;"
                    f" {r['follow_runs']} follow runs)",
                )
            )
            out.append(
                (
                    f"console {r['rate_offered']} lines/s: agent CPU",
                    "",
                    f"{r['agent_cpu_percent']} %",
                )
            )
    return out


def print_table(result: dict[str, Any]) -> None:
    table = rows(result)
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    header = ("figure", "target", "measured")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in table:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60, help="footprint window")
    parser.add_argument("--settle", type=float, default=10, help="before the footprint window")
    parser.add_argument("--hangs", type=int, default=3)
    parser.add_argument("--stops", type=int, default=3)
    parser.add_argument("--rates", default="200,1000,5000", help="console lines/s, comma-separated")
    parser.add_argument("--spam-seconds", type=float, default=10)
    parser.add_argument(
        "--only",
        default="footprint,crash,hang,stop,throughput",
        help="which parts to run, comma-separated",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--profile-agent", type=Path, help="run the agent under cProfile -o FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="wcms-bench-programs-"))
    bench = Bench(work, profile=args.profile_agent.resolve() if args.profile_agent else None)
    started = time.monotonic()
    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cores": psutil.cpu_count(),
    }
    try:
        bench.start()
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("footprint", lambda: footprint(bench, seconds=args.seconds, settle=args.settle)),
            ("crash", lambda: crashes(bench, count=args.crashes)),
            ("hang", lambda: hangs(bench, count=args.hangs)),
            ("stop", lambda: stops(bench, count=args.stops)),
            (
                "throughput",
                lambda: throughput(
                    bench,
                    rates=[int(r) for r in args.rates.split(",")],
                    seconds=args.spam_seconds,
                ),
            ),
        ]
        for key, step in steps:
            if key not in only:
                continue
            t = time.monotonic()
            print(f"[{time.monotonic() - started:6.1f} s] {key} ...", file=sys.stderr, flush=True)
            result[key] = step()
            result[key]["phase_s"] = round(time.monotonic() - t, 1)
            result["agent_rss_mb_now"] = round(bench.agent_process.memory_info().rss / MB, 1)
    finally:
        bench.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    result["total_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))
    print()
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
