"""Agent settings: defaults, environment, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from wcms.agent.config import AgentConfig
from wcms.agent.errors import ConfigError


def test_defaults() -> None:
    config = AgentConfig(server_url="http://server:8000")
    assert config.transport == "auto"
    assert config.power_backend == "os"
    assert config.max_output_bytes == 64 * 1024
    assert config.heartbeat_interval is None
    assert config.shutdown_timeout == 2.0
    assert (config.backoff_initial, config.backoff_max) == (0.5, 30.0)
    assert config.state_dir.name in ("wcms-agent", "agent")


def test_environment_then_overrides(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    environ = {
        "WCMS_AGENT_SERVER_URL": "https://env-server",
        "WCMS_AGENT_STATE_DIR": str(tmp_path),
        "WCMS_AGENT_HEARTBEAT_INTERVAL": "15",
        "WCMS_AGENT_TRANSPORT": "http",
        "WCMS_AGENT_ENROLLMENT_TOKEN_FILE": str(token_file),
    }
    config = AgentConfig.from_env(environ, server_url="http://flag-server", machine_id=None)
    assert config.server_url == "http://flag-server"
    assert config.state_dir == tmp_path
    assert config.heartbeat_interval == 15.0
    assert config.transport == "http"
    assert config.enrollment_token == "tok-123"
    assert config.machine_id is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"server_url": "server:8000"}, "http:// or https://"),
        ({"machine_id": "-bad"}, "machine id"),
        ({"machine_id": "x" * 129}, "machine id"),
        ({"transport": "carrier-pigeon"}, "transport"),
        ({"power_backend": "magic"}, "power backend"),
        ({"heartbeat_interval": 0}, "heartbeat"),
        ({"backoff_initial": 60}, "backoff"),
        ({"log_level": "LOUD"}, "log level"),
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"server_url": "http://server", **changes}
    with pytest.raises(ConfigError, match=message):
        AgentConfig(**values)  # type: ignore[arg-type]


def test_a_missing_server_is_explained() -> None:
    with pytest.raises(ConfigError, match="--server"):
        AgentConfig.from_env({})


def test_a_bad_number_in_the_environment_is_explained() -> None:
    with pytest.raises(ConfigError, match="WCMS_AGENT_BACKOFF_MAX"):
        AgentConfig.from_env({"WCMS_AGENT_SERVER_URL": "http://s", "WCMS_AGENT_BACKOFF_MAX": "x"})
