"""The link between a machine and the server goes dead for a while, then comes back:
the machine goes offline once the silence is noticed, online when the link is back,
and a command sent into the dead link runs exactly once."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import FAULT_SETTINGS, SLACK_S, report, wait_status
from wcms.server.channel.links import POLL_GAP_S

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

# The agent's own requests time out after this long (wcms.agent.client): the longest
# an agent waits before it tries again over a link that came back.
AGENT_REQUEST_TIMEOUT_S = 30.0


def hold(seconds: float) -> None:
    """Keep a fault in place for ``seconds``: the length of the fault under test, not a
    wait for anything to happen."""
    time.sleep(seconds)


def silence_bound(transport: str) -> float:
    """How long after its last message a silent agent is offline at most."""
    timeout = FAULT_SETTINGS["heartbeat_timeout"]
    if transport == "ws":
        return timeout
    # Over long-poll a poll in flight ends first; then the next request may take
    # POLL_GAP_S to come.
    return max(timeout, FAULT_SETTINGS["poll_timeout"]) + POLL_GAP_S


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_cut_link_goes_offline_then_online_when_it_is_back(lab, transport):
    machine = lab.machine()
    server = lab.start_server(machine, None)
    api = server.api()
    lab.agent(machine, "lab-01", transport=transport, token=server.token())
    wait_status(api, "lab-01", "online", timeout=30)

    cut_at = time.time()
    machine.cut()
    bound = silence_bound(transport) + FAULT_SETTINGS["heartbeat_interval"]
    offline_at = wait_status(api, "lab-01", "offline", timeout=bound + SLACK_S)
    assert api.machine("lab-01")["status_reason"] == "heartbeat_timeout"
    report(f"link cut -> offline ({transport})", offline_at - cut_at, bound=bound)
    assert offline_at - cut_at <= bound + SLACK_S

    restored_at = time.time()
    machine.restore()
    online_at = wait_status(api, "lab-01", "online", timeout=AGENT_REQUEST_TIMEOUT_S + SLACK_S)
    report(f"link back -> online ({transport})", online_at - restored_at, bound=30)


def test_a_command_sent_into_a_cut_link_runs_once_when_it_is_back(lab, tmp_path):
    machine = lab.machine()
    # A command's timeout plus the slack is 10 s; the cut lasts longer.
    server = lab.start_server(machine, None, run_timeout_slack=5)
    api = server.api()
    lab.agent(machine, "lab-01", token=server.token())
    wait_status(api, "lab-01", "online", timeout=30)

    machine.cut()
    marker = tmp_path / "ran"
    # Created before the silence is noticed: pushed into the dead connection.
    command = api.exec("lab-01", f"echo ran >> {marker}", timeout_s=5)
    hold(15)
    machine.restore()

    done = api.wait(command["id"], timeout=AGENT_REQUEST_TIMEOUT_S + SLACK_S)
    assert done["runs"][0]["state"] == "succeeded", done
    # Once a later command has succeeded, the agent has dealt with every run the
    # server gave it before (it gets them in order): nothing more can come.
    later = api.wait(api.exec("lab-01", f"echo later >> {marker}")["id"])
    assert later["runs"][0]["state"] == "succeeded", later
    assert marker.read_text() == "ran\nlater\n"
