"""Measure the core loop on real processes: exec round trip and graceful-stop detection.

    python benchmarks/core_latency.py [--runs 20] [--database-url URL]

Starts a `wcms server` (SQLite in a temporary directory unless --database-url) and one
`wcms agent`, then reports median and p90 of:
- API: POST /api/commands (execute `true`) -> result stored, seen via the wait endpoint
- CLI: the whole `wcms exec MACHINE -- true` process, Python start-up included
- stop: SIGTERM to the agent -> the server's recorded offline transition
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx


def wcms(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "wcms", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
        "runs": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wcms-bench-"))
    db = ["--data-dir", str(work)] + (
        ["--database-url", args.database_url] if args.database_url else []
    )
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wcms",
            "server",
            "--port",
            str(args.port),
            "--log-level",
            "warning",
            *db,
        ],
        env={**os.environ, "WCMS_ADMIN_PASSWORD": "benchmark-password"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agent = None
    try:
        wait_until(lambda: _ok(url + "/healthz"))
        token = wcms("enroll-token", "--uses", "5", *db)
        key = wcms("api-key", "--name", "bench", *db)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})

        def start_agent() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wcms",
                    "agent",
                    "--server",
                    url,
                    "--token",
                    token,
                    "--state-dir",
                    str(work / "agent"),
                    "--machine-id",
                    "bench-pc",
                    "--power-backend",
                    f"record:{work / 'power.jsonl'}",
                    "--log-level",
                    "warning",
                ],
                env={**os.environ, "WCMS_AGENT_BACKOFF_MAX": "1"},
            )

        def online() -> bool:
            r = api.get("/api/machines/bench-pc")
            return r.status_code == 200 and r.json()["status"] == "online"

        agent = start_agent()
        wait_until(online)
        time.sleep(1)
        api_times, cli_times, stop_times = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            created = api.post(
                "/api/commands",
                json={"selector": "bench-pc", "type": "execute", "payload": {"command": "true"}},
            ).json()
            done = api.get(f"/api/commands/{created['id']}", params={"wait": 30}).json()
            api_times.append(time.perf_counter() - t0)
            assert done["done"] and done["runs"][0]["state"] == "succeeded", done
        env = {"WCMS_URL": url, "WCMS_API_KEY": key}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            wcms("exec", "bench-pc", "--", "true", env=env)
            cli_times.append(time.perf_counter() - t0)
        for _ in range(max(5, args.runs // 2)):
            wait_until(online)
            time.sleep(0.5)
            t0 = time.time()
            agent.send_signal(signal.SIGTERM)
            wait_until(lambda: not online())
            changed = api.get("/api/machines/bench-pc").json()["status_changed_at"]
            stop_times.append(datetime.fromisoformat(changed).timestamp() - t0)
            agent.wait(timeout=10)
            agent = start_agent()
        result = {
            "database": "postgresql" if args.database_url else "sqlite",
            "exec_api_round_trip": summary(api_times),
            "exec_cli_process": summary(cli_times),
            "graceful_stop_to_offline": summary(stop_times),
        }
        print(json.dumps(result, indent=2))
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=10)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
