"""Supervised programs end to end: a real server, a real agent, and the fake game server
(tests/fakegame.py) as the program, speaking RCON, A2S, Server List Ping and REST.

The agent tells a crash from an intended stop, restarts crashes after the backoff, gives
up to ``crash_loop`` (and keeps retrying) on a boot loop, restarts a hung server, stops
in the declared order, and keeps its programs through its own restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.procs import Api, free_port, process_gone, wait_for

FAKEGAME = Path(__file__).resolve().parent.parent / "fakegame.py"
# Short backoffs so that a test sees several restarts in seconds.
QUICK = {"initial_s": 0.5, "max_s": 2, "loop_crashes": 5, "loop_window_s": 60, "healthy_s": 30}


@pytest.fixture
def database_url() -> None:
    """What the agent does with its programs does not depend on the server's database;
    the server side of programs is tested on both (tests/server/test_programs*.py)."""
    return None


@pytest.fixture(autouse=True)
def _no_game_left(no_game_left: None) -> None:
    """Programs outlive their agent by design: every fake game is killed after a test."""


def game(tmp_path: Path, *args: str) -> list[str]:
    """The fake game's command line; it logs what it is told to ``game.log``."""
    return [sys.executable, "-u", str(FAKEGAME), "--log", str(tmp_path / "game.log"), *args]


def told(tmp_path: Path) -> list[str]:
    path = tmp_path / "game.log"
    return path.read_text().splitlines() if path.exists() else []


def add(api: Api, machine: str, name: str, command: list[str], **fields: Any) -> dict[str, Any]:
    body = {"machine": machine, "name": name, "command": command, **fields}
    return api.post("/api/programs", body, status=201)  # type: ignore[no-any-return]


def program(api: Api, machine: str, name: str) -> dict[str, Any]:
    return api.get(f"/api/programs/{machine}/{name}")  # type: ignore[no-any-return]


def events(api: Api, machine: str, name: str) -> list[dict[str, Any]]:
    return api.get(f"/api/programs/{machine}/{name}/events")  # type: ignore[no-any-return]


def reasons(api: Api, machine: str, name: str) -> list[tuple[str, str]]:
    return [(event["to"], event["reason"]) for event in events(api, machine, name)]


def wait_state(api: Api, machine: str, name: str, state: str, timeout: float = 20) -> dict:
    return wait_for(  # type: ignore[no-any-return]
        lambda: (p := program(api, machine, name))["state"] == state and p,
        timeout=timeout,
        what=f"{machine}/{name} {state}",
    )


def act(api: Api, machine: str, name: str, action: str) -> None:
    response = api.client.post(f"/api/programs/{machine}/{name}/{action}")
    assert response.status_code in (200, 202), response.text


def online(api: Api, machine: str) -> None:
    wait_for(lambda: api.status_of(machine) == "online", what=f"{machine} online")


def minecraft_running(api: Api, tmp_path: Path, **fields: Any) -> dict[str, Any]:
    """game-01/mc: the fake game as a Minecraft server (preset, Server List Ping probe),
    started and running."""
    port = free_port()
    add(
        api,
        "game-01",
        "mc",
        game(tmp_path, "--slp-port", str(port)),
        preset="minecraft",
        probe=f"minecraft://127.0.0.1:{port}",
        backoff=QUICK,
        **fields,
    )
    act(api, "game-01", "mc", "start")
    return wait_state(api, "game-01", "mc", "running")


def game_processes(tmp_path: Path) -> list[psutil.Process]:
    mark = str(tmp_path / "game.log")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if mark in cmdline and str(FAKEGAME) in cmdline:
            found.append(process)
    return found


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_crash_is_restarted_after_the_backoff(server, spawn, tmp_path, transport):
    api = server.api()
    spawn("game-01", transport=transport)
    online(api, "game-01")
    add(api, "game-01", "mc", game(tmp_path, "--crash-after", "1.5"), backoff=QUICK)
    act(api, "game-01", "mc", "start")
    first = wait_state(api, "game-01", "mc", "running")
    wait_for(
        lambda: program(api, "game-01", "mc")["restarts"] >= 1,
        timeout=20,
        what="a restart after the crash",
    )
    again = wait_state(api, "game-01", "mc", "running")
    assert again["pid"] != first["pid"]
    crash = next(e for e in events(api, "game-01", "mc") if e["reason"] == "crash")
    assert crash["exit"]["code"] == 1
    assert ("backoff", "crash") in reasons(api, "game-01", "mc")
    assert ("starting", "retry") in reasons(api, "game-01", "mc")


def test_five_quick_crashes_are_a_crash_loop_that_keeps_trying(server, spawn, tmp_path):
    api = server.api()
    spawn("game-01")
    online(api, "game-01")
    add(api, "game-01", "loop", game(tmp_path, "--crash-after", "0.1"), backoff=QUICK)
    act(api, "game-01", "loop", "start")
    looping = wait_state(api, "game-01", "loop", "crash_loop", timeout=30)
    assert looping["last_exit"]["reason"] == "crash"
    crashes = [e for e in events(api, "game-01", "loop") if e["reason"] == "crash"]
    assert len(crashes) >= 5
    # Never left dead: retried at the longest delay.
    count = len(game_starts(tmp_path))
    wait_for(lambda: len(game_starts(tmp_path)) > count, timeout=10, what="a retry in crash_loop")


def game_starts(tmp_path: Path) -> list[str]:
    return [line for line in told(tmp_path) if line.startswith("started")]


def test_an_in_game_stop_is_not_restarted(server, spawn, tmp_path):
    api = server.api()
    spawn("game-01")
    online(api, "game-01")
    minecraft_running(api, tmp_path, restart="always")
    sent = api.command("game-01", "program_send", payload={"name": "mc", "text": "stop"})
    assert api.wait(sent["id"])["runs"][0]["state"] == "succeeded"
    stopped = wait_state(api, "game-01", "mc", "stopped")
    assert stopped["last_exit"] == {**stopped["last_exit"], "code": 0, "reason": "in_game_stop"}
    time.sleep(2)  # longer than the backoff: nothing starts it again
    assert program(api, "game-01", "mc")["state"] == "stopped"
    assert not game_processes(tmp_path)


def test_a_hung_server_is_detected_and_restarted(server, spawn, tmp_path):
    api = server.api()
    spawn("game-01")
    online(api, "game-01")
    port = free_port()
    add(
        api,
        "game-01",
        "ark",
        game(tmp_path, "--rcon-port", str(port), "--rcon-password", "pw"),
        preset="ark",
        probe=f"rcon://:pw@127.0.0.1:{port}",
        probe_interval_s=1,
        probe_grace_s=1,
        probe_timeout_s=0.5,
        backoff=QUICK,
    )
    act(api, "game-01", "ark", "start")
    first = wait_state(api, "game-01", "ark", "running")
    sent = api.command("game-01", "program_send", payload={"name": "ark", "text": "hang"})
    api.wait(sent["id"])
    hung_at = time.monotonic()
    wait_for(
        lambda: ("stopping", "hang") in reasons(api, "game-01", "ark"),
        timeout=20,
        what="the hang detected",
    )
    detected_in = time.monotonic() - hung_at
    again = wait_state(api, "game-01", "ark", "running", timeout=30)
    assert again["pid"] != first["pid"]
    # grace 1 s + 3 misses of 1 s and at most two 0.5 s timeouts each: well inside 15 s.
    assert detected_in < 15


def test_the_stop_sequence_runs_in_order(server, spawn, tmp_path):
    api = server.api()
    spawn("game-01")
    online(api, "game-01")
    port = free_port()
    add(
        api,
        "game-01",
        "mc",
        game(tmp_path, "--rcon-port", str(port), "--rcon-password", "pw", "--ignore-stop"),
        preset="minecraft",
        probe=f"rcon://:pw@127.0.0.1:{port}",
        stop_timeout_s=1,
        backoff=QUICK,
    )
    act(api, "game-01", "mc", "start")
    wait_state(api, "game-01", "mc", "running")
    act(api, "game-01", "mc", "stop")
    stopped = wait_state(api, "game-01", "mc", "stopped")
    assert stopped["last_exit"]["reason"] == "user_stop"
    lines = [line.split()[0] for line in told(tmp_path) if line.split()]
    steps = [line for line in lines if line in ("save-all", "stop", "sigterm")]
    assert steps == ["save-all", "stop", "sigterm"], told(tmp_path)
    assert not game_processes(tmp_path)


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_program_survives_an_agent_restart_without_a_duplicate(
    server, spawn, tmp_path, transport
):
    api = server.api()
    agent = spawn("game-01", transport=transport)
    online(api, "game-01")
    add(api, "game-01", "pal", game(tmp_path), preset="generic", backoff=QUICK)
    act(api, "game-01", "pal", "start")
    before = wait_state(api, "game-01", "pal", "running")
    agent.stop(kill=True)
    assert not process_gone(before["pid"])
    spawn("game-01", transport=transport)  # the same state directory: its programs
    wait_for(
        lambda: ("running", "adopted") in reasons(api, "game-01", "pal"),
        what="the program adopted",
    )
    after = program(api, "game-01", "pal")
    assert after["state"] == "running" and after["pid"] == before["pid"]
    assert [p.pid for p in game_processes(tmp_path)] == [before["pid"]]


def test_the_console_streams_and_takes_a_command(server, spawn, tmp_path):
    api = server.api()
    spawn("game-01")
    online(api, "game-01")
    minecraft_running(api, tmp_path)
    sent = api.command("game-01", "program_send", payload={"name": "mc", "text": "echo hello-42"})
    assert api.wait(sent["id"])["runs"][0]["state"] == "succeeded"
    logs = server.remote("program", "logs", "game-01/mc", "--lines", "20")
    assert logs.returncode == 0, logs.stderr
    assert "hello-42" in logs.stdout


BAD_INPUT = [
    (["--preset", "quake"], "preset"),
    (["--probe", "gopher://127.0.0.1:70"], "probe"),
    (["--probe", "rcon://127.0.0.1:27015"], "probe"),
    (["--schedule", "every day"], "schedule"),
]


@pytest.mark.parametrize(("flags", "field"), BAD_INPUT)
def test_bad_program_definitions_are_refused_clearly(server, flags, field):
    server.enrol("game-01")
    result = server.remote("program", "add", "game-01", "mc", *flags, "--", "java", "-jar", "s")
    assert result.returncode != 0
    assert field in result.stderr
    assert "Traceback" not in result.stderr


def test_a_duplicate_name_and_an_unknown_machine_are_refused(server):
    server.enrol("game-01")
    ok = server.remote("program", "add", "game-01", "mc", "--", "java", "-jar", "s")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == "game-01/mc"
    again = server.remote("program", "add", "game-01", "mc", "--", "java")
    assert again.returncode != 0 and "already has a program" in again.stderr
    nowhere = server.remote("program", "add", "no-such-pc", "mc", "--", "java")
    assert nowhere.returncode != 0 and "no-such-pc" in nowhere.stderr


def test_a_command_line_that_cannot_run_says_so(server, spawn, tmp_path):
    api = server.api()
    spawn("game-01")
    online(api, "game-01")
    missing = str(tmp_path / "no-such-server")
    add(api, "game-01", "bad", [missing], backoff=QUICK)
    result = server.remote("program", "start", "game-01/bad", "--wait", "10")
    assert result.returncode != 0
    assert "start_failed" in result.stderr + result.stdout
    assert program(api, "game-01", "bad")["last_exit"]["reason"] == "start_failed"
    listed = json.loads(server.remote("program", "list", "--json", check=True).stdout)
    assert {"machine", "name", "state", "pid", "uptime_s", "restarts", "last_exit"} <= set(
        listed[0]
    )


def test_logs_follow_streams_new_lines_as_they_come(server, spawn, tmp_path):
    api = server.api()
    spawn("game-01")
    online(api, "game-01")
    add(api, "game-01", "srv", game(tmp_path), backoff=QUICK)
    act(api, "game-01", "srv", "start")
    wait_state(api, "game-01", "srv", "running")
    env = {**os.environ, "WCMS_URL": server.url, "WCMS_API_KEY": server.key}
    follower = subprocess.Popen(
        [sys.executable, "-m", "wcms", "program", "logs", "game-01/srv", "--follow", "-n", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")))
        reader.start()
        wait_for(
            lambda: any(
                c["type"] == "program_logs" and c["summary"].get("running")
                for c in api.get("/api/commands", params={"limit": 5})
            ),
            what="the follower's console run running",
        )
        for n in range(3):
            text = f"echo line-{n}"
            sent = api.command("game-01", "program_send", payload={"name": "srv", "text": text})
            api.wait(sent["id"])
        wait_for(
            lambda: all(any(f"line-{n}" in line for line in seen) for n in range(3)),
            what="the followed lines",
        )
    finally:
        follower.terminate()
        follower.wait(timeout=10)
