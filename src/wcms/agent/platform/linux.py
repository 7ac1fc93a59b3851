"""Linux."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import subprocess
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

log = logging.getLogger(__name__)

# util-linux's setpriv: since 2.33 it sets a parent-death signal before it runs a command.
SETPRIV = Path("/usr/bin/setpriv")
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
PROTECTED_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
    "/run", "/sbin", "/sys", "/usr", "/var/lib",
)  # fmt: skip
# Keys of /proc/cpuinfo that name the CPU: x86 first, then ARM boards.
_CPU_KEYS = ("model name", "hardware", "model", "cpu model")


class LinuxPlatform(posix.PosixPlatform):
    name = "linux"

    def __init__(
        self,
        *,
        machine_id_files: Sequence[Path] = MACHINE_ID_FILES,
        setpriv: Path | None = SETPRIV,
    ) -> None:
        super().__init__()
        self._machine_id_files = tuple(machine_id_files)
        self._setpriv = setpriv if setpriv is not None and setpriv.is_file() else None
        # Whether that setpriv can do it is found out at the first command.
        self._prefix: tuple[str, ...] | None = None

    async def _shell_prefix(self) -> tuple[str, ...]:
        # The kernel kills the shell when the agent dies (PR_SET_PDEATHSIG), set by
        # setpriv between the fork and the shell: preexec_fn could set it too, but is
        # unsafe in a process with threads. The signal reaches the shell only (and
        # comes when the thread that started it ends: the event loop's); what the shell
        # started is killed by the next agent start, with kill_leftovers.
        if self._prefix is None:
            self._prefix = await _death_signal_prefix(self._setpriv, shell=self.shell)
        return self._prefix

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


async def _death_signal_prefix(setpriv: Path | None, *, shell: str) -> tuple[str, ...]:
    """The argv prefix that gives a command SIGKILL as its parent-death signal, if this
    system's setpriv can (tried once on ``shell``); else ()."""
    consequence = "a command runs on if the agent is killed, until the agent starts again"
    if setpriv is None:
        log.warning("%s (util-linux) is missing: %s", SETPRIV, consequence)
        return ()
    prefix = (str(setpriv), "--pdeathsig", "KILL", "--")
    try:
        probe = await asyncio.create_subprocess_exec(
            *prefix,
            shell,
            "-c",
            "exit 0",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError as exc:
        log.warning("cannot run %s (%s): %s", setpriv, exc, consequence)
        return ()
    try:
        code = await asyncio.wait_for(probe.wait(), 10)
    except TimeoutError:
        probe.kill()
        code = await probe.wait()
    if code != 0:
        log.warning("%s cannot set a parent-death signal (needs 2.33): %s", setpriv, consequence)
        return ()
    return prefix
