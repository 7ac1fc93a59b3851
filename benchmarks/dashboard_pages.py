"""Time the dashboard's pages with a seeded fleet of 2,000 machines.

    python benchmarks/dashboard_pages.py [--machines 2000] [--rooms 50] [--runs 7] [--no-browser]

Seeds a fresh SQLite database (benchmarks/seed_fleet.py: 2,000 machines in 50 rooms of 40
seats, 80 % online with a latest status, a week of per-minute history for a few), starts
`wcms server` on it, logs in, and reports for each page the median and p90 of
- server: request to last byte over HTTP (httpx), and the page size;
- browser: Chromium navigation to the `load` event (scripts run), when Playwright and
  /usr/bin/chromium are there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_fleet import seed

PASSWORD = "bench-password-1"


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WCMS_ADMIN_PASSWORD": PASSWORD,
        # Seeded "online" machines have no agent: keep them online for the run.
        "WCMS_HEARTBEAT_INTERVAL": "3600",
        "WCMS_OFFLINE_GRACE": "3600",
        "WCMS_LOG_LEVEL": "warning",
    }
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "wcms", "server", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start; see " + str(data_dir / "server.log"))


def login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    response = client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token[1]}
    )
    assert response.status_code == 303, response.text
    return client


def pages(ids: list[str]) -> list[str]:
    machine = ids[0]
    return [
        "/",
        "/rooms",
        "/rooms/A101",
        "/layout/editor?room=A101",
        "/machines",
        "/machines?sort=cpu&status=online",
        "/machines/table?q=pc07",
        f"/pc/{machine}",
        "/commands",
        "/audit",
        "/settings/enroll-tokens",
        "/api/machines",
        "/api/rooms",
        f"/api/machines/{machine}/history?range=24h",
        f"/api/machines/{machine}/history?range=7d",
        f"/api/machines/{machine}/history?range=90d",
    ]


def time_http(client: httpx.Client, path: str, runs: int) -> tuple[float, float, int]:
    samples = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        size = len(response.content)
    return statistics.median(samples), quantile(samples, 0.9), size


def time_browser(url: str, paths: list[str], runs: int) -> dict[str, tuple[float, float]]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if not Path("/usr/bin/chromium").exists():
        return {}
    out = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(url + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button.primary")
        page.wait_for_url(url + "/")
        for path in paths:
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                page.goto(url + path, wait_until="load")
                samples.append((time.perf_counter() - started) * 1000)
            out[path] = (statistics.median(samples), quantile(samples, 0.9))
        browser.close()
    return out


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="Dashboard page times with a seeded fleet")
    parser.add_argument("--machines", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wcms-bench-") as tmp:
        data_dir = Path(tmp)
        ids = asyncio.run(seed(data_dir, count=args.machines, room_count=args.rooms))
        port = 20000 + os.getpid() % 10000
        url = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port)
        try:
            client = login(url)
            print(f"{args.machines} machines in {args.rooms} rooms; median / p90 of {args.runs}")
            print(f"{'page':48} {'server ms':>16} {'size KiB':>9} {'browser load ms':>18}")
            targets = pages(ids)
            browser = (
                {}
                if args.no_browser
                else time_browser(url, [p for p in targets if not p.startswith("/api/")], args.runs)
            )
            for path in targets:
                median, p90, size = time_http(client, path, args.runs)
                shown = browser.get(path)
                load = f"{shown[0]:7.0f} / {shown[1]:6.0f}" if shown else ""
                print(f"{path:48} {median:7.1f} / {p90:6.1f} {size / 1024:9.0f} {load:>18}")
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
