"""A machine loses power and comes straight back: its old connection was never closed
(no FIN, no RST), yet the agent that boots again is the machine, not a clone of it."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import SLACK_S, connected, report, wait_connected, wait_status
from tests.procs import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def test_a_machine_back_from_a_power_loss_is_online_at_once_and_not_a_clone(lab, tmp_path):
    machine = lab.machine()
    # Silence is noticed after a minute: the server still holds the dead connection
    # when the machine is back, as it would after a real power cut.
    server = lab.start_server(machine, None, heartbeat_timeout=60)
    api = server.api()
    agent = lab.agent(machine, "lab-01", state="pc", token=server.token())
    wait_status(api, "lab-01", "online", timeout=30)
    # A heartbeat stored: the agent had the welcome, so the server has nothing left
    # to send that it would retransmit (and be answered with a RST) once power is back.
    wait_for(lambda: api.machine("lab-01")["last_status"], what="a heartbeat stored")

    # The power goes: nothing leaves the machine any more, not even its sockets' FIN.
    machine.cut()
    agent.stop(kill=True)
    machine.destroy()

    # The power comes back: same address, same disk, same credential, a new process.
    # (The server is asked nothing meanwhile: its address is gone with the machine.)
    machine = lab.machine()
    assert api.status_of("lab-01") == "online"
    assert server.connected() == 1, "the server saw the connection end"
    before = connected(agent)
    started = time.time()
    again = lab.agent(machine, "lab-01", state="pc")
    back = wait_connected(again, before, timeout=SLACK_S + 20)
    report("power loss -> online again (WebSocket)", back - started, bound=5)

    record = api.machine("lab-01")
    assert record["status"] == "online"
    assert record["conflict"] is None, record["conflict"]
    history = api.get("/api/machines/lab-01/presence")
    assert [event["status"] for event in history] == ["online"], "presence flapped"
    marker = tmp_path / "ran"
    done = api.wait(api.exec("lab-01", f"echo back >> {marker}")["id"])
    assert done["runs"][0]["state"] == "succeeded", done
    assert marker.read_text() == "back\n"
    assert "duplicate" not in again.log().lower()
    assert "two agents claim" not in server.log()
