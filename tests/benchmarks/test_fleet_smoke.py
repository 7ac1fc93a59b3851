"""The fleet simulator still runs every scenario, and the server still loses nothing.

A small fleet only: the figures are not checked (they are measured, not asserted),
but what must hold at any size is: every agent connects, every heartbeat sent is a
row, a broadcast and a command in flight across a server restart reach every agent
exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_every_scenario_runs_on_a_small_fleet(tmp_path):
    out = tmp_path / "fleet.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.fleet",
            "all",
            "--agents",
            "200",
            "--workers",
            "2",
            "--duration",
            "3",
            "--samples",
            "10",
            "--idle",
            "3",
            "--port",
            str(free_port()),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(out.read_text())["median"]
    assert figures["agents"] == 200
    assert figures["heartbeat_rows_match"] is True
    assert figures["heartbeats_sent"] > 0
    assert figures["command_samples"] == 10
    assert figures["broadcast_succeeded"] == 200
    assert figures["broadcast_doubled"] == 0
    assert figures["reconnect_command_lost"] == 0
    assert figures["reconnect_command_doubled"] == 0
    assert figures["agent_rss_mb"] > 0
    for line in ("connect_storm_s", "broadcast_all_stored_s", "agent_cpu_percent"):
        assert line in run.stdout
