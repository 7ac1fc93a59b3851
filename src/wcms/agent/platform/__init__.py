"""Operating-system specific code, behind one :class:`Platform` interface."""

from __future__ import annotations

import sys
from functools import cache

from wcms.agent.platform.base import OsInfo, Platform, ShellProcess, app_specific_id

if sys.platform == "win32":
    from wcms.agent.platform.windows import WindowsPlatform as _Native
elif sys.platform == "darwin":
    from wcms.agent.platform.darwin import DarwinPlatform as _Native
else:
    from wcms.agent.platform.linux import LinuxPlatform as _Native

__all__ = ["OsInfo", "Platform", "ShellProcess", "app_specific_id", "current_platform"]


@cache
def current_platform() -> Platform:
    """The platform this process runs on (one shared instance)."""
    return _Native()
