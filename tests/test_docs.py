"""Every setting and every CLI command is documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wcms.agent.config import AgentConfig
from wcms.cli.main import app
from wcms.server.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_server_setting_is_documented(name):
    assert f"WCMS_{name.upper()}" in README


@pytest.mark.parametrize(
    "name",
    [
        "server_url",
        "enrollment_token",
        "state_dir",
        "machine_id",
        "heartbeat_interval",
        "transport",
        "power_backend",
        "log_level",
    ],
)
def test_agent_options_are_documented(name):
    assert name in AgentConfig.__dataclass_fields__
    assert (
        f"--{name.replace('_', '-').replace('server-url', 'server').replace('enrollment-token', 'token')}"
        in README
    )


def _commands() -> list[str]:
    names = [c.name for c in app.registered_commands if c.name]
    for group in app.registered_groups:
        names += [f"{group.name} {c.name}" for c in group.typer_instance.registered_commands]
    return names


@pytest.mark.parametrize("command", _commands())
def test_every_cli_command_is_documented(command):
    assert re.search(rf"wcms {re.escape(command)}\b", README), command
