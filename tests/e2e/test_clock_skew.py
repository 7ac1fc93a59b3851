"""An agent whose wall clock is an hour off (a lab PC with a flat CMOS battery) honours
every expiry and timeout as the server meant it: its clock is made wrong for real with
libfaketime, the server's is right."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.procs import wait_for

# Debian's faketime package, under the machine's multiarch directory.
LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), Path("/nonexistent"))


@pytest.fixture
def database_url() -> None:
    """The server's clock is right whatever holds its data: SQLite is enough here."""
    return None


def faked_clock(offset: str) -> dict[str, str]:
    if not LIBFAKETIME.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("libfaketime is missing: scripts/system-deps.sh installs faketime")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    # The agent's monotonic clock stays true: only the wall clock is wrong.
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
    }


@pytest.mark.parametrize("transport", ["ws", "http"])
@pytest.mark.parametrize("offset", ["+1h", "-1h"], ids=["fast", "slow"])
def test_an_agent_with_a_wrong_clock_honours_expiry_and_timeouts(
    server, spawn, tmp_path, transport, offset
):
    assert shutil.which("sh")
    api = server.api()
    agent = spawn("skewed-1", transport=transport, env=faked_clock(offset))
    wait_for(lambda: api.status_of("skewed-1") == "online", what="the skewed agent online")
    marker = tmp_path / "ran"
    # A 10-minute expiry: judged on the server's clock, the run is well within it.
    short_lived = api.exec("skewed-1", f"echo ran >> {marker}", expires_in_s=600)
    done = api.wait(short_lived["id"])
    assert done["runs"][0]["state"] == "succeeded", done
    # A timeout: counted on the agent's monotonic clock, two seconds are two seconds.
    slow = api.exec("skewed-1", "sleep 30", timeout_s=2)
    timed = api.wait(slow["id"])
    assert timed["runs"][0]["state"] == "timed_out", timed
    assert timed["runs"][0]["result"]["duration_ms"] < 15_000
    # Queued while the agent is away with a short expiry: the server expires it on its
    # own clock; one with time left runs when the agent is back.
    agent.stop()
    wait_for(lambda: api.status_of("skewed-1") == "offline", what="the agent offline")
    expiring = api.exec("skewed-1", f"echo late >> {marker}", expires_in_s=1)
    waiting = api.exec("skewed-1", f"echo back >> {marker}", expires_in_s=600)
    expired = api.wait(expiring["id"], timeout=20)
    assert expired["runs"][0]["state"] == "expired", expired
    agent.start()
    back = api.wait(waiting["id"])
    assert back["runs"][0]["state"] == "succeeded", back
    assert marker.read_text().splitlines() == ["ran", "back"]
