"""Durable commands end to end: real server, real agents, real shell."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
from contextlib import closing

import pytest

from tests.procs import pid_in, process_gone, wait_for
from wcms.agent.state import JOURNAL_FILE

TRANSPORTS = ["ws", "http"]


def online(api, *machine_ids):
    for machine_id in machine_ids:
        wait_for(lambda m=machine_id: api.status_of(m) == "online", what=f"{machine_id} online")


def run_later_command(api, machine_id, command_line):
    """Run one more command and wait for it: once it has succeeded, the agent has dealt
    with everything the server delivered to it before (it gets runs in order)."""
    done = api.wait(api.exec(machine_id, command_line)["id"])
    assert done["runs"][0]["state"] == "succeeded", done
    return done


def journal_command_ids(agent):
    """The command ids of the runs the agent's journal recorded, in arrival order."""
    with closing(sqlite3.connect(agent.state_dir / JOURNAL_FILE)) as journal:
        return [row[0] for row in journal.execute("SELECT command_id FROM runs ORDER BY rowid")]


def wait_until_killed(pid):
    # A command left alive sleeps 30 s: far beyond this wait.
    wait_for(lambda: process_gone(pid), timeout=10, what=f"the command's process {pid} killed")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_on_one_machine_returns_its_output(server, spawn, transport):
    spawn("lab-01", transport=transport)
    online(server.api(), "lab-01")
    result = server.remote(
        "exec", "lab-01", "--json", "--", "echo", "hello;", "echo", "oops", ">&2"
    )
    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)
    assert run["status"] == "succeeded"
    assert run["exit_code"] == 0
    assert run["stdout"] == "hello\n"
    assert run["stderr"] == "oops\n"
    assert run["id"] == "lab-01"


def test_exec_on_all_and_on_a_tag(server, spawn):
    api = server.api()
    for name in ("lab-01", "lab-02", "lab-03"):
        spawn(name)
    online(api, "lab-01", "lab-02", "lab-03")
    api.client.patch("/api/machines/lab-02", json={"tags": ["gpu"]}).raise_for_status()

    everyone = server.remote("exec", "all", "--json", "--", "echo $((6*7))")
    assert everyone.returncode == 0, everyone.stderr
    runs = json.loads(everyone.stdout)
    assert sorted(r["id"] for r in runs) == ["lab-01", "lab-02", "lab-03"]
    assert {r["stdout"] for r in runs} == {"42\n"}

    tagged = server.remote("exec", "tag:gpu", "--json", "--", "true")
    assert [r["id"] for r in json.loads(tagged.stdout)] == ["lab-02"]


def test_every_run_has_the_whole_lifecycle_quick_or_long(server, spawn):
    """A run that ends at once reports only its end; the server still records when it
    started, so its log reads queued, delivered, running, succeeded like a long one."""
    api = server.api()
    spawn("lab-01")
    online(api, "lab-01")
    for command_line in ("true", "sleep 1"):
        run = api.wait(api.exec("lab-01", command_line)["id"])["runs"][0]
        assert [e["state"] for e in run["events"]] == [
            "queued",
            "delivered",
            "running",
            "succeeded",
        ], command_line
        assert run["delivered_at"] <= run["started_at"] <= run["finished_at"]


def test_a_command_can_be_read_as_a_summary_without_its_runs(server, spawn):
    api = server.api()
    for name in ("lab-01", "lab-02"):
        spawn(name)
    online(api, "lab-01", "lab-02")
    command = api.exec("all", "true")
    summary = api.get(f"/api/commands/{command['id']}", params={"wait": 30, "runs": False})
    assert summary["done"] and summary["summary"] == {"succeeded": 2}
    assert summary["runs"] == []
    assert len(api.get(f"/api/commands/{command['id']}")["runs"]) == 2


def test_exec_exits_non_zero_when_a_machine_fails(server, spawn):
    spawn("lab-01")
    online(server.api(), "lab-01")
    result = server.remote("exec", "lab-01", "--", "exit 3")
    assert result.returncode == 1
    assert "failed" in result.stdout and "exit 3" in result.stdout


def test_exec_times_out_and_kills_the_command(server, spawn, tmp_path):
    spawn("lab-01")
    online(server.api(), "lab-01")
    pidfile = tmp_path / "pid"
    command_line = f"sleep 30 & echo $! > {pidfile}; wait"
    result = server.remote("exec", "lab-01", "--json", "--timeout", "1", "--", command_line)
    assert result.returncode == 1
    [run] = json.loads(result.stdout)
    assert run["status"] == "timed_out"
    pid = wait_for(lambda: pid_in(pidfile), what="the command started")
    wait_until_killed(pid)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_command_queued_while_offline_runs_once_on_reconnect(server, spawn, tmp_path, transport):
    api = server.api()
    agent = spawn("lab-01", transport=transport)
    online(api, "lab-01")
    agent.stop()
    wait_for(lambda: api.status_of("lab-01") == "offline", what="offline")
    ran = tmp_path / "ran.txt"
    command = api.exec("lab-01", f"echo once >> {ran}")
    assert command["runs"][0]["state"] == "queued"
    agent.start()
    done = api.wait(command["id"])
    assert done["runs"][0]["state"] == "succeeded"
    agent.stop()
    agent.start()
    online(api, "lab-01")
    run_later_command(api, "lab-01", f"echo later >> {ran}")
    assert ran.read_text() == "once\nlater\n"


def test_queued_commands_are_delivered_best_priority_first(server, spawn):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    agent.stop()
    wait_for(lambda: api.status_of("lab-01") == "offline", what="offline")
    low = api.exec("lab-01", "true", priority=-5)
    high = api.exec("lab-01", "true", priority=50)
    normal = api.exec("lab-01", "true")
    agent.start()
    names = {}
    for name, command in (("low", low), ("high", high), ("normal", normal)):
        assert api.wait(command["id"])["runs"][0]["state"] == "succeeded"
        names[command["id"]] = name
    # The agent runs them side by side, so the server's timestamps of three `true`s are
    # noise; the agent's journal records the order it received and started them in.
    order = journal_command_ids(agent)
    assert [names[command_id] for command_id in order] == ["high", "normal", "low"]


def test_an_expired_command_never_runs(server, spawn, tmp_path):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    agent.stop()
    wait_for(lambda: api.status_of("lab-01") == "offline", what="offline")
    marker = tmp_path / "ran"
    command = api.exec("lab-01", f"touch {marker}", expires_in_s=1)
    done = api.wait(command["id"], timeout=10)
    assert done["runs"][0]["state"] == "expired"
    agent.start()
    online(api, "lab-01")
    later = run_later_command(api, "lab-01", "true")
    assert journal_command_ids(agent) == [later["id"]], "the expired run reached the agent"
    assert not marker.exists()


def test_a_command_running_during_an_agent_restart_is_not_run_twice(server, spawn, tmp_path):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    log = tmp_path / "log.txt"
    command = api.exec("lab-01", f"echo start >> {log}; sleep 4; echo end >> {log}")
    wait_for(lambda: log.exists(), what="the command started")
    agent.signal(signal.SIGTERM)
    agent.wait_exit()
    agent.start()
    run = api.wait(command["id"])["runs"][0]
    assert run["state"] == "failed"
    assert "interrupted" in run["result"]["error"]
    run_later_command(api, "lab-01", f"echo later >> {log}")
    lines = log.read_text().splitlines()
    assert lines.count("start") == 1 and "later" in lines, lines


def test_a_command_delivered_before_an_agent_crash_runs_once(server, spawn, tmp_path):
    """Two runs: the first blocks, the agent is killed with SIGKILL while the second one
    waits behind it in the agent's queue; after the restart each has run exactly once."""
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    log = tmp_path / "log.txt"
    first = api.exec("lab-01", f"echo first >> {log}")
    assert api.wait(first["id"])["runs"][0]["state"] == "succeeded"
    agent.stop(kill=True)
    agent.start()
    online(api, "lab-01")
    second = api.exec("lab-01", f"echo second >> {log}")
    assert api.wait(second["id"])["runs"][0]["state"] == "succeeded"
    assert log.read_text() == "first\nsecond\n"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_a_command_running_during_a_server_restart_is_not_lost(
    server, spawn, tmp_path, transport, kill
):
    api = server.api()
    spawn("lab-01", transport=transport)
    online(api, "lab-01")
    log = tmp_path / "log.txt"
    command = api.exec("lab-01", f"echo start >> {log}; sleep 3; echo end >> {log}")
    wait_for(lambda: log.exists(), what="the command started")
    server.restart(kill=kill)
    api = server.api()
    run = api.wait(command["id"], timeout=60)["runs"][0]
    assert run["state"] == "succeeded", run
    assert log.read_text() == "start\nend\n"
    online(api, "lab-01")


def test_a_command_created_just_before_a_server_restart_runs_once(server, spawn, tmp_path):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    agent.stop()
    wait_for(lambda: api.status_of("lab-01") == "offline", what="offline")
    log = tmp_path / "log.txt"
    command = api.exec("lab-01", f"echo ran >> {log}")
    server.restart(kill=True)
    agent.start()
    api = server.api()
    assert api.wait(command["id"], timeout=60)["runs"][0]["state"] == "succeeded"
    run_later_command(api, "lab-01", f"echo later >> {log}")
    assert log.read_text() == "ran\nlater\n"


def test_cancel_stops_a_running_command(server, spawn, tmp_path):
    api = server.api()
    spawn("lab-01")
    online(api, "lab-01")
    pidfile = tmp_path / "pid"
    command = api.exec("lab-01", f"sleep 30 & echo $! > {pidfile}; wait")
    pid = wait_for(lambda: pid_in(pidfile), what="the command started")
    wait_for(
        lambda: api.get(f"/api/commands/{command['id']}")["runs"][0]["state"] == "running",
        what="running",
    )
    result = server.remote("cancel", str(command["id"]))
    assert result.returncode == 0, result.stderr
    run = api.wait(command["id"])["runs"][0]
    assert run["state"] == "cancelled"
    wait_until_killed(pid)


def test_retry_runs_a_failed_command_again_as_a_new_attempt(server, spawn, tmp_path):
    api = server.api()
    spawn("lab-01")
    online(api, "lab-01")
    flag = tmp_path / "flag"
    command = api.exec("lab-01", f"test -e {flag}")
    assert api.wait(command["id"])["runs"][0]["state"] == "failed"
    flag.touch()
    result = server.remote("retry", str(command["id"]))
    assert result.returncode == 0, result.stderr
    run = api.wait(command["id"])["runs"][0]
    assert run["state"] == "succeeded"
    assert run["attempt"] == 2
    states = [e["state"] for e in run["events"]]
    assert states.count("queued") == 2 and "failed" in states


def test_max_retries_retries_a_failing_command_by_itself(server, spawn, tmp_path):
    api = server.api()
    spawn("lab-01")
    online(api, "lab-01")
    count = tmp_path / "count"
    command = api.exec("lab-01", f"echo x >> {count}; exit 1", max_retries=2)
    run = api.wait(command["id"])["runs"][0]
    assert run["state"] == "failed"
    assert run["attempt"] == 3
    assert count.read_text() == "x\nx\nx\n"


def test_power_commands_reach_the_recording_backend_only(server, spawn):
    api = server.api()
    agent = spawn("lab-01")
    online(api, "lab-01")
    result = server.remote(
        "send", "lab-01", "reboot", "delay_s=30", "message=maintenance", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["status"] == "succeeded"
    [action] = agent.power_actions()
    assert action["action"] == "reboot"
    assert action["delay_s"] == 30
    assert action["message"] == "maintenance"


def test_secrets_are_used_but_never_stored_or_shown(server, spawn):
    api = server.api()
    spawn("lab-01")
    online(api, "lab-01")
    # The command proves it sees the secret without spelling it out.
    digest = hashlib.sha256(b"hunter2-xyz").hexdigest()[:16]
    command = api.command(
        "lab-01",
        payload={
            "command": f'test "$(printf %s "$TOKEN" | sha256sum | cut -c1-16)" = {digest} '
            '&& echo "token=$TOKEN"',
            "secrets": {"TOKEN": "hunter2-xyz"},
        },
    )
    run = api.wait(command["id"])["runs"][0]
    assert run["state"] == "succeeded", run
    assert "hunter2-xyz" not in run["result"]["stdout"]
    assert "***" in run["result"]["stdout"]
    shown = json.dumps(api.get(f"/api/commands/{command['id']}", params={"events": True}))
    audit = json.dumps(api.get("/api/audit"))
    assert "hunter2-xyz" not in shown + audit
    database = server.data_dir / "wcms.db"
    if database.exists():
        raw = b"".join(p.read_bytes() for p in server.data_dir.glob("wcms.db*"))
        assert b"hunter2-xyz" not in raw


def test_an_overlong_stdout_is_capped_and_marked(server, spawn):
    api = server.api()
    spawn("lab-01")
    online(api, "lab-01")
    command = api.exec("lab-01", "yes xxxxxxx | head -c 3000000")
    run = api.wait(command["id"])["runs"][0]
    assert run["state"] == "succeeded"
    assert run["result"]["stdout_truncated"] is True
    assert 0 < len(run["result"]["stdout"]) <= 64 * 1024
    assert set(run["result"]["stdout"]) <= {"x", "\n"}


def test_a_dangerous_command_is_refused_with_a_reason(server, spawn):
    api = server.api()
    spawn("lab-01")
    online(api, "lab-01")
    response = api.client.post(
        "/api/commands",
        json={"selector": "lab-01", "type": "execute", "payload": {"command": "rm -rf /"}},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "policy_violation"
    assert "rm -rf /" in error["message"]
