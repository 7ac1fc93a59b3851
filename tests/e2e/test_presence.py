"""Enrolment and presence, with real server and agent processes."""

from __future__ import annotations

import shutil
import signal
import time
from datetime import datetime

import pytest

from tests.procs import wait_for

TRANSPORTS = ["ws", "http"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_enrolled_agent_comes_online_with_its_inventory(server, spawn, transport):
    agent = spawn("lab-01", transport=transport)
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="lab-01 online")
    machine = api.machine("lab-01")
    assert machine["transport"] == transport
    inventory = machine["inventory"]
    assert inventory["hostname"]
    assert inventory["cpu_threads"] >= 1
    assert inventory["ram_total"] > 0
    assert inventory["boot_time"]
    assert inventory["agent_version"]
    credential = agent.state_dir / "credential.json"
    assert credential.stat().st_mode & 0o777 == 0o600
    wait_for(lambda: api.machine("lab-01")["last_status"], what="a heartbeat stored")
    status = api.machine("lab-01")["last_status"]
    assert 0 <= status["cpu_percent"] <= 100
    assert status["ram_total"] == inventory["ram_total"]
    assert status["process_count"] > 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("server_settings", [{"offline_grace": 60}])
def test_a_graceful_stop_marks_the_machine_offline_at_once(server, spawn, transport):
    agent = spawn("lab-01", transport=transport)
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="online")
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=10) == 0
    # The grace is 60 s: only the agent's goodbye can make it offline this soon.
    wait_for(lambda: api.status_of("lab-01") == "offline", timeout=10, what="offline")
    machine = api.machine("lab-01")
    assert machine["status_reason"] == "shutdown"
    history = api.get("/api/machines/lab-01/presence")
    assert [(e["status"], e["reason"]) for e in history[:2]] == [
        ("offline", "shutdown"),
        ("online", "connected"),
    ]


@pytest.mark.parametrize("transport", ["ws", "http"])
@pytest.mark.parametrize("server_settings", [{"offline_grace": 3, "heartbeat_timeout": 60}])
def test_a_killed_agent_goes_offline_after_the_grace(server, spawn, transport):
    """The closed socket shows it, also under a long-poll that was waiting; the heartbeat
    timeout (a minute here) plays no part."""
    agent = spawn("lab-01", transport=transport)
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="online")
    agent.stop(kill=True)
    killed_at = time.time()
    wait_for(lambda: api.status_of("lab-01") == "offline", timeout=20, what="offline")
    machine = api.machine("lab-01")
    assert machine["status_reason"] == "connection_lost"
    went_offline = datetime.fromisoformat(machine["status_changed_at"]).timestamp()
    assert went_offline - killed_at >= 3 - 0.5, "offline before the grace had passed"


@pytest.mark.parametrize("server_settings", [{"offline_grace": 5}])
def test_a_quick_reconnect_does_not_flap(server, spawn):
    agent = spawn("lab-01")
    # lab-02 is the clock: killed once lab-01 is back, it goes offline at the end of its
    # own grace, which ends after lab-01's would have.
    witness = spawn("lab-02")
    api = server.api()
    for machine_id in ("lab-01", "lab-02"):
        wait_for(lambda m=machine_id: api.status_of(m) == "online", what=f"{machine_id} online")
    connected = "connected over WebSocket as lab-01"
    before = agent.log().count(connected)
    agent.stop(kill=True)
    agent.start()
    wait_for(lambda: agent.log().count(connected) > before, what="the agent reconnected")
    witness.stop(kill=True)
    # The grace must elapse; the witness's offline row says it has.
    wait_for(lambda: api.status_of("lab-02") == "offline", timeout=20, what="lab-02's grace over")
    assert api.machine("lab-02")["status_reason"] == "connection_lost"
    history = api.get("/api/machines/lab-01/presence")
    assert [e["status"] for e in history] == ["online"], history


def test_revoking_a_machine_disconnects_and_refuses_its_agent(server, spawn):
    agent = spawn("lab-01")
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="online")
    result = server.remote("revoke", "lab-01")
    assert result.returncode == 0, result.stderr
    assert agent.wait_exit(timeout=20) == 3
    machine = api.machine("lab-01")
    assert machine["status"] == "offline"
    assert machine["status_reason"] == "revoked"
    assert machine["revoked"] is True
    # Started again with its old credential, it is refused at once.
    agent.start()
    assert agent.wait_exit(timeout=20) == 3
    assert "revoked" in agent.log()
    assert api.status_of("lab-01") == "offline"


def test_two_live_agents_claiming_one_id_are_flagged_not_merged(server, spawn):
    first = spawn("lab-01", state="original")
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="online")
    clone = spawn("lab-01", state="clone")
    wait_for(lambda: api.machine("lab-01")["conflict"], what="conflict flagged")
    assert clone.proc.poll() is None or clone.proc.returncode != 0
    assert not (clone.state_dir / "credential.json").exists(), "the clone got a credential"
    assert first.proc.poll() is None
    assert api.status_of("lab-01") == "online"
    listed = server.remote("pcs")
    assert "duplicate" in listed.stdout


def test_reinstalling_takes_over_the_record_and_revokes_the_old_credential(server, spawn):
    old = spawn("lab-01", state="old-install")
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="online")
    old.stop()
    wait_for(lambda: api.status_of("lab-01") == "offline", what="offline")
    new = spawn("lab-01", state="new-install")
    wait_for(lambda: api.status_of("lab-01") == "online", what="online again")
    history = api.get("/api/machines/lab-01/presence")
    assert len(history) >= 3, "the reinstall lost the machine's history"
    new.stop()
    old.start()
    assert old.wait_exit(timeout=20) == 3, "the old credential still works"


def test_a_clone_with_the_same_credential_is_flagged_and_the_pair_does_not_take_turns(
    server, spawn, tmp_path
):
    """A cloned disk carries the credential too. The clone's connection replaces the
    original's, as a machine back from a power loss would; the original, still alive,
    comes back with its old session and is refused, again and again."""
    original = spawn("lab-01", state="original")
    api = server.api()
    wait_for(lambda: api.status_of("lab-01") == "online", what="online")
    clone_dir = tmp_path / "agent-clone"
    clone_dir.mkdir(mode=0o700)
    shutil.copy2(original.state_dir / "credential.json", clone_dir / "credential.json")
    clone = spawn("lab-01", state="clone", token=None)
    wait_for(lambda: api.machine("lab-01")["conflict"], what="conflict flagged")
    refused = "another live agent already uses machine id"
    wait_for(lambda: original.log().count(refused) >= 3, timeout=30, what="refused, retrying")
    connected = "connected over WebSocket as lab-01"
    assert clone.log().count(connected) == 1, "the clone lost the machine"
    assert original.log().count(connected) == 1, "the original took the machine back"
    assert original.proc.poll() is None and clone.proc.poll() is None
    assert api.status_of("lab-01") == "online"
    assert api.machine("lab-01")["conflict"]["session"]
    history = api.get("/api/machines/lab-01/presence")
    assert [e["status"] for e in history] == ["online"], history
