"""Screenshots of every dashboard page at 1366x768, in English and Korean, light and dark.

    python benchmarks/screenshots.py [--out docs/screenshots]

Seeds a small fleet (4 rooms, 120 machines, a week of history for some), starts
`wcms server` and two real agents in room A101, sends them a command, and saves one PNG
per page with Debian's Chromium (/usr/bin/chromium) through Playwright.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_pages import PASSWORD, start_server
from seed_fleet import seed

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def start_agents(url: str, data_dir: Path, token: str) -> list[subprocess.Popen[bytes]]:
    agents = []
    for name in ("a101-lab-41", "a101-lab-42"):
        state = data_dir / name
        log = open(data_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        agents.append(
            subprocess.Popen(
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
                    str(state),
                    "--machine-id",
                    name,
                    "--power-backend",
                    f"record:{state / 'power.jsonl'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return agents


def api_client(url: str, data_dir: Path) -> httpx.Client:
    key = wcms_local("api-key", "--name", "screenshots", data_dir=data_dir)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def wcms_local(*args: str, data_dir: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "wcms", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def shoot(url: str, out: Path, machine: str, command_id: int) -> None:
    from playwright.sync_api import sync_playwright

    english = [
        ("01-login", "/login"),
        ("02-overview", "/"),
        ("03-rooms", "/rooms"),
        ("04-room-map", "/rooms/A101"),
        ("05-layout-editor", "/layout/editor?room=A101"),
        ("06-machines", "/machines"),
        ("07-machine", f"/pc/{machine}"),
        ("08-commands", "/commands"),
        ("09-command", f"/commands/{command_id}"),
        ("10-audit-log", "/audit"),
        ("11-users", "/settings/users"),
        ("12-api-keys", "/settings/api-keys"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for language, scheme, pages in (
            ("en", "light", english),
            (
                "ko",
                "light",
                [
                    ("ko-02-overview", "/"),
                    ("ko-04-room-map", "/rooms/A101"),
                    ("ko-07-machine", f"/pc/{machine}"),
                ],
            ),
            (
                "en",
                "dark",
                [("dark-04-room-map", "/rooms/A101"), ("dark-07-machine", f"/pc/{machine}")],
            ),
        ):
            context = browser.new_context(
                viewport={"width": 1366, "height": 768},
                color_scheme=scheme,
                locale="ko-KR" if language == "ko" else "en-US",
                timezone_id="Asia/Seoul",
                extra_http_headers={"Accept-Language": language},
            )
            page = context.new_page()
            page.goto(url + "/login")
            if scheme == "light" and language == "en":
                page.screenshot(path=out / "01-login.png")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button.primary")
            page.wait_for_url(url + "/")
            for name, path in pages:
                if name == "01-login":
                    continue
                page.goto(url + path)
                if "/pc/" in path:
                    page.click("[data-testid=range-7d]")
                page.wait_for_timeout(700)
                page.screenshot(path=out / f"{name}.png")
            if language == "en" and scheme == "light":
                page.goto(url + "/settings/enroll-tokens")
                form = page.locator("[data-testid=token-form]")
                form.locator("input[name=room]").fill("A101")
                form.locator("button").click()
                page.wait_for_timeout(300)
                page.screenshot(path=out / "13-enroll-tokens.png")
                tablet = browser.new_context(
                    viewport={"width": 768, "height": 1024}, storage_state=context.storage_state()
                )
                tablet_page = tablet.new_page()
                tablet_page.goto(url + "/rooms/A101")
                tablet_page.wait_for_timeout(500)
                tablet_page.screenshot(path=out / "tablet-04-room-map.png")
                tablet.close()
            context.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of the dashboard")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wcms-shots-") as tmp:
        data_dir = Path(tmp)
        ids = asyncio.run(seed(data_dir, count=120, room_count=4, history_for=2))
        port = 20000 + os.getpid() % 10000
        url = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port)
        agents: list[subprocess.Popen[bytes]] = []
        try:
            api = api_client(url, data_dir)
            token = api.post("/api/enroll-tokens", json={"uses": 2}).json()["token"]
            agents = start_agents(url, data_dir, token)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                machines = {m["id"]: m for m in api.get("/api/machines").json()}
                if all(
                    machines.get(a, {}).get("status") == "online"
                    for a in ("a101-lab-41", "a101-lab-42")
                ):
                    break
                time.sleep(0.3)
            for seat, name in (("4-7", "a101-lab-41"), ("4-8", "a101-lab-42")):
                api.patch(f"/api/machines/{name}", json={"room": "A101", "seat": seat})
            command = api.post(
                "/api/commands",
                json={
                    "selector": "a101-lab-41,a101-lab-42",
                    "type": "execute",
                    "payload": {"command": "uname -sr; uptime"},
                },
            ).json()
            api.get(f"/api/commands/{command['id']}", params={"wait": 20})
            shoot(url, args.out, ids[0], command["id"])
        finally:
            for agent in agents:
                agent.terminate()
                agent.wait(timeout=10)
            server.terminate()
            server.wait(timeout=20)
    shots = sorted(args.out.glob("*.png"))
    print(f"{len(shots)} screenshots in {args.out}:")
    for shot in shots:
        print(f"  {shot}  {shot.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
