"""The `wcms` command line: help everywhere, clear errors, the documented contract."""

from __future__ import annotations

import json

import pytest

from tests.procs import ServerProc, wcms

COMMANDS = [
    [],
    ["server"],
    ["agent"],
    ["demo"],
    ["migrate"],
    ["enroll-token"],
    ["api-key"],
    ["user"],
    ["user", "create"],
    ["user", "passwd"],
    ["pcs"],
    ["exec"],
    ["send"],
    ["revoke"],
    ["cancel"],
    ["retry"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "wcms")
def test_every_command_has_help(command):
    result = wcms(*command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_version():
    assert wcms("--version").stdout.startswith("wcms ")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["pcs"], {"WCMS_URL": "", "WCMS_API_KEY": "k"}, "set WCMS_URL"),
        (["pcs"], {"WCMS_URL": "http://127.0.0.1:1", "WCMS_API_KEY": ""}, "set WCMS_API_KEY"),
        (["pcs"], {"WCMS_URL": "http://127.0.0.1:1", "WCMS_API_KEY": "k"}, "cannot reach"),
        (["agent", "--server", "ftp://x"], {}, "server URL"),
        (["agent", "--server", "http://x", "--machine-id", "bad id"], {}, "machine id"),
        (["enroll-token", "--ttl", "soon"], {}, "not a duration"),
        (
            ["send", "all", "reboot", "novalue"],
            {"WCMS_URL": "http://127.0.0.1:1", "WCMS_API_KEY": "k"},
            "key=value",
        ),
        (
            # A byte that is not UTF-8 reaches Python as a lone surrogate.
            ["exec", "lab-01", "--", "echo \udcff"],
            {"WCMS_URL": "http://127.0.0.1:1", "WCMS_API_KEY": "k"},
            "payload: Value error, must be valid Unicode",
        ),
    ],
)
def test_bad_input_gets_a_message_and_a_non_zero_exit(args, env, message, tmp_path):
    result = wcms(*args, env={"WCMS_DATA_DIR": str(tmp_path), **env}, check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_local_admin_commands_print_the_secret_alone_on_the_last_line(tmp_path):
    data = ["--data-dir", str(tmp_path)]
    token = wcms("enroll-token", "--uses", "40", "--ttl", "8h", *data).stdout.splitlines()[-1]
    key = wcms("api-key", "--name", "ci", *data).stdout.splitlines()[-1]
    assert token.startswith("wcmse_") and " " not in token
    assert key.startswith("wcmsk_") and " " not in key
    created = wcms("user", "create", "teacher", "--password", "correct-horse", *data)
    assert "teacher" in created.stdout
    again = wcms("user", "create", "teacher", "--password", "correct-horse", *data, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    short = wcms("user", "create", "kid", "--password", "123", *data, check=False)
    assert short.returncode != 0 and "at least 8" in short.stderr


@pytest.mark.e2e
def test_pcs_json_lists_machines_with_the_contract_fields(tmp_path):
    server = ServerProc(tmp_path / "server", None).start()
    try:
        result = server.remote("pcs", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == []
        missing = server.remote("exec", "nowhere", "--", "true")
        assert missing.returncode == 2
        assert "matches no machine" in missing.stderr
    finally:
        server.stop()
