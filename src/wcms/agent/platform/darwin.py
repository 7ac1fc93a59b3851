"""macOS."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from wcms.agent.platform import posix
from wcms.agent.platform.base import OsInfo, app_specific_id

assert sys.platform != "win32"

_UUID = re.compile(r'"IOPlatformUUID"\s*=\s*"([^"]+)"')


class DarwinPlatform(posix.PosixPlatform):
    name = "darwin"

    def os_machine_id(self) -> str | None:
        output = _run(["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"])
        match = _UUID.search(output)
        return app_specific_id(match.group(1)) if match else None

    def default_state_dir(self) -> Path:
        if os.geteuid() == 0:
            return Path("/Library/Application Support/WCMS/agent")
        return Path.home() / "Library" / "Application Support" / "WCMS" / "agent"

    def os_info(self) -> OsInfo:
        version = platform.mac_ver()[0]
        return OsInfo(name="macOS", version=version, pretty=f"macOS {version}".strip())

    def cpu_model(self) -> str:
        return _run(["sysctl", "-n", "machdep.cpu.brand_string"]).strip() or platform.machine()


def _run(argv: list[str]) -> str:
    """Output of a short system query, or "" if it cannot run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout
