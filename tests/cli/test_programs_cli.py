"""`wcms program`: help, one-line refusals, and the documented contract against a real
server (no agent: the state asked for is never reached, and the CLI says so)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.procs import ServerProc, wcms

REMOTE = {"WCMS_URL": "http://127.0.0.1:1", "WCMS_API_KEY": "k"}
PROGRAM_KEYS = {
    "machine",
    "name",
    "state",
    "pid",
    "uptime_s",
    "restarts",
    "last_exit",
    "players",
    "cpu_percent",
    "rss_bytes",
}


@pytest.mark.parametrize(
    "command",
    [
        ["program"],
        *(["program", c] for c in ("add", "list", "start", "stop", "restart", "remove", "events")),
    ],
    ids=lambda c: " ".join(c),
)
def test_every_program_command_has_help(command):
    result = wcms(*command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["program", "add", "m1", "mc", "--preset", "factorio", "--", "java"], "--preset must be"),
        (["program", "add", "m1", "mc", "--restart", "sometimes", "--", "java"], "--restart must"),
        (["program", "add", "m1", "mc", "--env", "NOVALUE", "--", "java"], "--env takes K=V"),
        (["program", "add", "m1", "mc", "--probe", "ftp://x:1", "--", "java"], "probe:"),
        (["program", "add", "m1", "mc", "--schedule", "often", "--", "java"], "schedule:"),
        (["program", "start", "no-slash"], "MACHINE/NAME"),
        (["program", "events", "a/b/c"], "MACHINE/NAME"),
    ],
)
def test_bad_arguments_get_one_line_and_a_non_zero_exit(args, message):
    result = wcms(*args, env=REMOTE, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    proc = ServerProc(tmp_path_factory.mktemp("server"), None).start()
    try:
        proc.enrol("gamehost")
        yield proc
    finally:
        proc.stop()


def test_add_list_start_and_events_against_a_server(server):
    added = server.remote(
        "program",
        "add",
        "gamehost",
        "mc",
        "--preset",
        "minecraft",
        "--secret-env",
        "RCON=hunter2",
        "--env",
        "JAVA=/usr/bin/java",
        "--",
        "java",
        "-jar",
        "server.jar",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().splitlines()[-1] == "gamehost/mc"
    listed = server.remote("program", "list", "--json")
    (program,) = json.loads(listed.stdout)
    assert set(program) >= PROGRAM_KEYS
    assert program["state"] == "stopped" and program["secret_env"] == ["RCON"]
    assert "hunter2" not in listed.stdout
    assert "gamehost/mc" in server.remote("program", "list").stdout
    # No agent reports the program: the wait ends without the state, and says why.
    started = server.remote("program", "start", "gamehost/mc", "--wait", "0.5")
    assert started.returncode == 1
    assert "not running" in started.stderr and "agent has not taken" in started.stderr
    asked = server.remote("program", "stop", "gamehost/mc", "--wait", "0", "--json")
    assert asked.returncode == 0 and json.loads(asked.stdout)["desired"] == "stopped"
    events = server.remote("program", "events", "gamehost/mc", "--json")
    assert events.returncode == 0 and json.loads(events.stdout) == []
    duplicate = server.remote("program", "add", "gamehost", "mc", "--", "java")
    assert duplicate.returncode != 0 and "409" in duplicate.stderr
    removed = server.remote("program", "remove", "gamehost/mc")
    assert removed.returncode == 0
    assert json.loads(server.remote("program", "list", "--json").stdout) == []
