"""Linux."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from wcms.agent.platform import linux_admin, posix, systemd
from wcms.agent.platform.base import OsInfo, app_specific_id
from wcms.agent.service import ServiceSpec
from wcms.protocol.actions import CreateUserPayload, PrintPayload

assert sys.platform != "win32"

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
PROTECTED_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
    "/run", "/sbin", "/sys", "/usr", "/var/lib",
)  # fmt: skip
# Keys of /proc/cpuinfo that name the CPU: x86 first, then ARM boards.
_CPU_KEYS = ("model name", "hardware", "model", "cpu model")


class LinuxPlatform(posix.PosixPlatform):
    name = "linux"

    def __init__(self, *, machine_id_files: Sequence[Path] = MACHINE_ID_FILES) -> None:
        super().__init__()
        self._machine_id_files = tuple(machine_id_files)

    def os_machine_id(self) -> str | None:
        for path in self._machine_id_files:
            try:
                raw = path.read_text(encoding="ascii", errors="replace").strip()
            except OSError:
                continue
            # systemd writes "uninitialized" during first boot of an image.
            if raw and raw != "uninitialized":
                return app_specific_id(raw)
        return None

    def default_state_dir(self) -> Path:
        if os.geteuid() == 0:
            return Path("/var/lib/wcms-agent")
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "wcms-agent"

    def os_info(self) -> OsInfo:
        try:
            release = platform.freedesktop_os_release()
        except OSError:
            release = {}
        kernel = platform.release()
        pretty = release.get("PRETTY_NAME") or f"Linux {kernel}"
        return OsInfo(name="Linux", version=kernel, pretty=pretty)

    def cpu_model(self) -> str:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return platform.processor()
        found: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            key = key.strip().lower()
            if sep and key in _CPU_KEYS and key not in found and value.strip():
                found[key] = value.strip()
        for key in _CPU_KEYS:
            if key in found:
                return found[key]
        return platform.processor() or platform.machine()

    def protected_dirs(self) -> tuple[str, ...]:
        return PROTECTED_DIRS

    def default_config_file(self) -> Path:
        return Path("/etc/wcms/agent.toml")

    def install_service(self, spec: ServiceSpec) -> str:
        return systemd.install(spec)

    def uninstall_service(self, spec: ServiceSpec) -> str:
        return systemd.uninstall(spec)

    def default_display(self) -> str | None:
        return os.environ.get("DISPLAY") or ":0"

    def package_command(self, package: str, *, root: Path) -> list[str]:
        return linux_admin.package_argv(package, root=root)

    def package_file_command(
        self, path: Path, kind: str, *, root: Path, args: list[str] | None
    ) -> list[str]:
        return linux_admin.package_file_argv(path, kind, root=root)

    async def create_user(self, payload: CreateUserPayload, *, root: Path) -> str:
        return await linux_admin.create_user(payload, root=root)

    async def delete_user(self, username: str, *, root: Path, remove_home: bool) -> str:
        return await linux_admin.delete_user(username, root=root, remove_home=remove_home)

    async def set_password(self, username: str, password: str, *, root: Path) -> str:
        return await linux_admin.set_password(username, password, root=root)

    async def print_file(self, path: Path, payload: PrintPayload) -> tuple[str, dict[str, Any]]:
        return await linux_admin.print_file(path, payload)

    async def notify_users(self, text: str, title: str | None) -> str:
        return await linux_admin.notify_users(text, title)

    async def lock_sessions(self) -> str:
        return await linux_admin.lock_sessions()

    async def logoff(self, user: str | None) -> str:
        if user is not None:
            return await linux_admin.logoff([user])
        users = sorted({u.name for u in psutil.users() if u.name and u.name != "root"})
        return await linux_admin.logoff(users)
