"""The agent as a systemd service (Linux)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from wcms.agent.errors import ConfigError
from wcms.agent.service import SERVICE_NAME, ServiceSpec

UNIT_DIR = Path("/etc/systemd/system")
UNIT_NAME = f"{SERVICE_NAME}.service"


def unit_text(spec: ServiceSpec) -> str:
    """The unit: restarted on failure but not after exit 2 (bad configuration) or 3
    (credential revoked); stopped with SIGTERM, on which the agent tells the server it is
    going away within two seconds."""
    return f"""\
[Unit]
Description=WCMS agent: remote management and monitoring
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={shlex.join(spec.argv)}
Restart=on-failure
RestartSec=5
RestartPreventExitStatus=2 3
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
"""


def install(spec: ServiceSpec) -> str:
    unit = (spec.unit_dir or UNIT_DIR) / UNIT_NAME
    try:
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(unit_text(spec), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {unit}: {exc.strerror}") from exc
    if spec.start:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", UNIT_NAME)
        return f"installed and started {UNIT_NAME} ({unit})"
    return f"installed {unit}; start it with: systemctl enable --now {UNIT_NAME}"


def uninstall(spec: ServiceSpec) -> str:
    unit = (spec.unit_dir or UNIT_DIR) / UNIT_NAME
    if spec.start:
        _systemctl("disable", "--now", UNIT_NAME, check=False)
    try:
        unit.unlink()
    except FileNotFoundError:
        return f"{unit} is not installed"
    except OSError as exc:
        raise ConfigError(f"cannot remove {unit}: {exc.strerror}") from exc
    if spec.start:
        _systemctl("daemon-reload")
    return f"removed {unit}"


def _systemctl(*args: str, check: bool = True) -> None:
    try:
        done = subprocess.run(
            ["systemctl", *args], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run systemctl {' '.join(args)}: {exc}") from exc
    if check and done.returncode != 0:
        raise ConfigError(f"systemctl {' '.join(args)} failed: {done.stderr.strip()}")
