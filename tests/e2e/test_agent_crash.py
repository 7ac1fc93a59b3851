"""An agent killed with SIGKILL while a command runs: the command dies with it, is
reported failed and interrupted when the agent is back, and runs again only if its
command is idempotent. Real server, real agent, real shell; both transports."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import psutil
import pytest

from tests.procs import AgentProc, Api, process_gone, wait_for
from wcms.agent.state import JOURNAL_FILE

TRANSPORTS = ["ws", "http"]
SLEEP_S = 3


def online(api: Api, machine_id: str) -> None:
    wait_for(lambda: api.status_of(machine_id) == "online", what=f"{machine_id} online")


def run_of(api: Api, command_id: int) -> dict:
    [run] = api.get(f"/api/commands/{command_id}")["runs"]
    return run


def journalled_shell(agent: AgentProc, run_id: int) -> int | None:
    """The pid of the run's shell once the agent journalled it."""
    with closing(sqlite3.connect(agent.state_dir / JOURNAL_FILE)) as journal:
        row = journal.execute(
            "SELECT pgid FROM runs WHERE run_id = ? AND attempt = 1", (run_id,)
        ).fetchone()
    return row[0] if row else None


def children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


def ran(marker) -> str:
    """What the marker's lines say: how many times the command did its work."""
    lines = marker.read_text().splitlines() if marker.exists() else []
    assert set(lines) <= {"ran"}, lines
    return {0: "never ran", 1: "ran once"}.get(len(lines), "ran twice")


def send_by_api(**fields):
    def send(server, command_line: str) -> dict:
        return server.api().exec("crash-01", command_line, **fields)

    return send


def send_by_cli(*flags: str):
    """`wcms exec` with ``flags``, not waiting for the result: the command it created."""

    def send(server, command_line: str) -> dict:
        done = server.remote("exec", "crash-01", "--wait", "0", *flags, "--", command_line)
        assert "crash-01" in done.stdout, done.stderr
        [newest] = server.api().get("/api/commands", params={"limit": 1})
        return server.api().get(f"/api/commands/{newest['id']}")

    return send


def crash_during(server, spawn, tmp_path, transport, send) -> tuple[dict, dict, str]:
    """Send the command, SIGKILL its agent while it runs, check the shell died with
    it, start the agent again; returns the command as sent, its final run, and what
    the marker says of it."""
    api = server.api()
    agent = spawn("crash-01", transport=transport)
    online(api, "crash-01")
    marker = tmp_path / "marker"
    command = send(server, f"sleep {SLEEP_S}; echo ran >> {marker}")
    [sent] = command["runs"]
    wait_for(lambda: run_of(api, command["id"])["state"] == "running", what="running")
    shell = wait_for(lambda: journalled_shell(agent, sent["id"]), what="the shell journalled")
    [sleeper] = wait_for(lambda: children(shell), what="the shell's sleep")
    assert str(marker) in " ".join(psutil.Process(shell).cmdline())

    agent.stop(kill=True)
    wait_for(lambda: process_gone(shell), timeout=5, what="the shell dead with its agent")
    agent.start()
    run = api.wait(command["id"], timeout=60)["runs"][0]
    # What the first attempt left (its sleep) ends, killed by the restarted agent or
    # by itself: had the shell lived, it would have written its line right after.
    wait_for(lambda: process_gone(sleeper.pid), timeout=SLEEP_S + 10, what="the sleep over")
    return api.get(f"/api/commands/{command['id']}"), run, ran(marker)


def assert_reported_interrupted(run: dict) -> None:
    assert run["state"] == "failed", run
    assert run["attempt"] == 1
    error = run["result"]["error"]
    assert error.startswith("interrupted: the agent stopped while this ran; "), error
    assert error.endswith("; it was not run again"), error
    assert "remaining process was killed" in error or "had already ended" in error, error


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_command_interrupted_by_an_agent_crash_never_runs_again(
    server, spawn, tmp_path, transport, max_retries
):
    send = send_by_api(max_retries=max_retries)
    command, run, marker = crash_during(server, spawn, tmp_path, transport, send)
    assert (command["max_retries"], command["idempotent"]) == (max_retries, False)
    assert marker == "never ran"
    assert_reported_interrupted(run)
    events = [e["state"] for e in run["events"]]
    assert events.count("running") == 1 and "queued" not in events[1:], events


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_idempotent_command_interrupted_by_a_crash_runs_again_once(
    server, spawn, tmp_path, transport
):
    send = send_by_cli("--retries", "1", "--idempotent")
    command, run, marker = crash_during(server, spawn, tmp_path, transport, send)
    assert (command["max_retries"], command["idempotent"]) == (1, True)
    assert marker == "ran once"
    assert (run["state"], run["attempt"]) == ("succeeded", 2), run
    details = [(e["state"], e["detail"]) for e in run["events"]]
    failed = [detail for state, detail in details if state == "failed"]
    assert len(failed) == 1 and failed[0].startswith("interrupted: "), details
    assert ("queued", "automatic retry") in details


def test_idempotent_round_trips_through_the_api(server, spawn):
    api = server.api()
    spawn("crash-01")
    online(api, "crash-01")
    for idempotent in (True, False):
        command = api.exec("crash-01", "true", idempotent=idempotent)
        assert command["idempotent"] is idempotent
        assert api.wait(command["id"])["idempotent"] is idempotent
        listed = api.get("/api/commands", params={"limit": 1})
        assert [(c["id"], c["idempotent"]) for c in listed] == [(command["id"], idempotent)]
