"""Installing the agent as an operating-system service: what to install, the same on
every platform; how, in the platform (a systemd unit, a Windows service)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from wcms.agent.errors import ConfigError

SERVICE_NAME = "wcms-agent"


@dataclass(frozen=True)
class ServiceSpec:
    """The service to install: the agent, run by this Python, with a config file."""

    config_file: Path
    python: Path = Path(sys.executable)
    # Where the unit goes (systemd); None: the system's place.
    unit_dir: Path | None = None
    # Start it now (and at every boot).
    start: bool = True

    @property
    def argv(self) -> list[str]:
        return [str(self.python), "-m", "wcms", "agent", "--config", str(self.config_file)]


def write_config(path: Path, settings: dict[str, str]) -> None:
    """Write the agent's TOML configuration, readable by its owner only (it may hold
    the enrolment token)."""
    lines = [
        "# WCMS agent configuration; every setting is described in the README.",
        *(f"{key} = {_toml_string(value)}" for key, value in settings.items()),
    ]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
