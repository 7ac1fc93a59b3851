"""Windows.

Importable everywhere so that its pure parts (command lines, output decoding) can be
tested on any machine. Code that calls Windows APIs sits inside
``if sys.platform == "win32":`` blocks, which ``mypy --platform win32`` checks and other
platforms skip.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from wcms.agent.platform import windows_admin, windows_programs, windows_service
from wcms.agent.platform.base import (
    Leftovers,
    OsInfo,
    Platform,
    ProgramProcess,
    ShellProcess,
    app_specific_id,
    decode_utf8,
    process_start_time,
)
from wcms.agent.platform.windows_admin import Win32Api
from wcms.agent.service import ServiceSpec
from wcms.protocol import PowerPayload
from wcms.protocol.actions import CreateUserPayload, PrintPayload

if sys.platform == "win32":
    import msvcrt
    import subprocess
    import winreg
    from ctypes import wintypes

_WINDOWS_ONLY = "this needs Windows"
# SetInformationJobObject's JobObjectExtendedLimitInformation, and the limit that kills
# the job's processes when its last handle closes (the agent's, also when it dies).
_JOB_EXTENDED_LIMITS = 9
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000


class _IoCounters(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "ReadOperationCount",
            "WriteOperationCount",
            "OtherOperationCount",
            "ReadTransferCount",
            "WriteTransferCount",
            "OtherTransferCount",
        )
    ]


class _BasicLimits(ctypes.Structure):
    """JOBOBJECT_BASIC_LIMIT_INFORMATION."""

    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", ctypes.c_uint32),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", ctypes.c_uint32),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", ctypes.c_uint32),
        ("SchedulingClass", ctypes.c_uint32),
    ]


class JobLimits(ctypes.Structure):
    """JOBOBJECT_EXTENDED_LIMIT_INFORMATION."""

    _fields_ = [
        ("BasicLimitInformation", _BasicLimits),
        ("IoInfo", _IoCounters),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


class WindowsShellProcess(ShellProcess):
    """A command whose process tree is held in a job object, so that children the
    command started are killed with it even after ``cmd.exe`` itself exited, and
    with the agent if it dies while the command runs."""

    def __init__(
        self, transport: asyncio.SubprocessTransport, job: int | None, *, started: float
    ) -> None:
        super().__init__(transport, started=started)
        self._job = job

    def kill_tree(self) -> None:
        if sys.platform == "win32":
            if self._job is not None:
                _kernel32().TerminateJobObject(self._job, 1)
            if self.returncode is None:
                _kill_psutil_tree(self.pid)
            return
        raise NotImplementedError(_WINDOWS_ONLY)

    def close(self) -> None:
        super().close()
        if sys.platform == "win32" and self._job is not None:
            kernel32 = _kernel32()
            # Over: what the command left running in the background (a server it
            # started) lives on, as on Linux, instead of dying with the handle.
            set_kill_on_close(kernel32, self._job, enabled=False)
            kernel32.CloseHandle(self._job)
            self._job = None


def _kill_psutil_tree(pid: int) -> None:
    """Kill ``pid`` and its descendants: the fallback when no job object is at hand."""
    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.kill()


class WindowsActions:
    """The action methods of :class:`WindowsPlatform` (mixed in: keeps each module short)."""

    api: Win32Api

    def protected_dirs(self) -> tuple[str, ...]:
        windir = os.environ.get("SYSTEMROOT", r"C:\Windows")
        programs = [os.environ.get(name) for name in ("PROGRAMFILES", "PROGRAMFILES(X86)")]
        return (windir, *(p for p in programs if p))

    def package_command(self, package: str, *, root: Path) -> list[str]:
        return windows_admin.winget_argv(package)

    def package_file_command(
        self, path: Path, kind: str, *, root: Path, args: list[str] | None
    ) -> list[str]:
        return windows_admin.installer_argv(path, kind, args)

    async def create_user(self, payload: CreateUserPayload, *, root: Path) -> str:
        return await windows_admin.create_user(self.api, payload)

    async def delete_user(self, username: str, *, root: Path, remove_home: bool) -> str:
        return await windows_admin.delete_user(self.api, username, remove_home=remove_home)

    async def set_password(self, username: str, password: str, *, root: Path) -> str:
        return await windows_admin.set_password(self.api, username, password)

    async def print_file(self, path: Path, payload: PrintPayload) -> tuple[str, dict[str, Any]]:
        return await windows_admin.print_file(self.api, path, payload)

    def screen_unavailable(self) -> str | None:
        return windows_admin.screen_unavailable(self.api)

    async def notify_users(self, text: str, title: str | None) -> str:
        return await windows_admin.notify_users(self.api, text, title)

    async def lock_sessions(self) -> str:
        return await windows_admin.lock_sessions(self.api)

    async def logoff(self, user: str | None) -> str:
        return await windows_admin.logoff(self.api, user)

    def default_config_file(self) -> Path:
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return Path(base) / "WCMS" / "agent.toml"

    def install_service(self, spec: ServiceSpec) -> str:
        if sys.platform == "win32":
            return windows_service.install(spec)
        raise NotImplementedError(_WINDOWS_ONLY)

    def uninstall_service(self, spec: ServiceSpec) -> str:
        if sys.platform == "win32":
            return windows_service.uninstall(spec)
        raise NotImplementedError(_WINDOWS_ONLY)


class WindowsPlatform(WindowsActions, Platform):
    name = "windows"

    def __init__(self, *, oem_codepage: str | None = None, api: Win32Api | None = None) -> None:
        # Console programs print in the OEM code page (cp437, cp949 on Korean Windows...)
        # unless they choose UTF-8; known only on Windows, so looked up lazily.
        self._oem_codepage = oem_codepage
        self.api = api or _native_api()

    def os_machine_id(self) -> str | None:
        guid = _registry_value(r"SOFTWARE\Microsoft\Cryptography", "MachineGuid")
        return app_specific_id(guid) if guid else None

    def default_state_dir(self) -> Path:
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "WCMS" / "agent"

    def lower_priority(self) -> None:
        if sys.platform == "win32":
            with contextlib.suppress(psutil.Error, OSError):
                psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)

    def os_info(self) -> OsInfo:
        key = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion"
        product = _registry_value(key, "ProductName") or "Windows"
        build = _registry_value(key, "CurrentBuildNumber") or ""
        # Windows 11 still calls itself "Windows 10" in ProductName; the build tells.
        if build.isdigit() and int(build) >= 22000:
            product = product.replace("Windows 10", "Windows 11")
        display = _registry_value(key, "DisplayVersion") or ""
        pretty = f"{product} {display}".strip()
        return OsInfo(name="Windows", version=platform.version(), pretty=pretty)

    def cpu_model(self) -> str:
        key = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
        name = _registry_value(key, "ProcessorNameString")
        return (name or platform.processor()).strip()

    async def spawn_shell(
        self,
        command: str,
        *,
        cwd: str | None,
        env: Mapping[str, str],
        protocol: Callable[[], asyncio.SubprocessProtocol],
    ) -> ShellProcess:
        if sys.platform == "win32":
            # NORMAL_PRIORITY_CLASS: children would otherwise inherit the agent's
            # lowered priority class.
            flags = (
                subprocess.CREATE_NEW_PROCESS_GROUP
                | subprocess.CREATE_NO_WINDOW
                | subprocess.NORMAL_PRIORITY_CLASS
            )
            before = time.time()
            transport, _ = await asyncio.get_running_loop().subprocess_shell(
                protocol,
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=dict(env),
                creationflags=flags,
            )
            pid = transport.get_pid()
            return WindowsShellProcess(
                transport,
                job_for(_kernel32(), pid),
                started=process_start_time(pid, fallback=before),
            )
        raise NotImplementedError(_WINDOWS_ONLY)

    async def spawn_program(
        self, argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str], console: Path
    ) -> ProgramProcess:
        return await windows_programs.spawn(argv, cwd=cwd, env=env, console=console)

    def adopt_program(self, pid: int, *, started: float, console: Path) -> ProgramProcess | None:
        return windows_programs.adopt(pid, started=started)

    def kill_leftovers(self, pid: int, *, started: float) -> Leftovers | None:
        # The command's job object was set to kill its processes when its last handle
        # closed: Windows closed it when the agent's process ended.
        return None

    def decode_output(self, data: bytes, *, complete: bool) -> str:
        # Strict, but an incomplete character at the end of cut-off output is allowed.
        strict = codecs.getincrementaldecoder("utf-8")(errors="strict")
        try:
            return strict.decode(data, final=complete)
        except UnicodeDecodeError:
            pass
        codepage = self._oem_codepage or _oem_codepage()
        try:
            return data.decode(codepage, errors="replace")
        except LookupError:
            return decode_utf8(data, complete=complete)

    def power_command(self, action: str, payload: PowerPayload) -> list[str]:
        argv = ["shutdown", "/r" if action == "reboot" else "/s", "/t", str(payload.delay_s)]
        if payload.message:
            argv += ["/c", payload.message]
        if payload.force:
            argv.append("/f")
        return argv

    def install_stop_handler(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
    ) -> None:
        # The Proactor loop has no add_signal_handler; a plain handler hands over.
        def handle(signum: int, frame: object) -> None:
            loop.call_soon_threadsafe(callback)

        if sys.platform == "win32":
            for signum in (signal.SIGINT, signal.SIGBREAK, signal.SIGTERM):
                signal.signal(signum, handle)
            return
        raise NotImplementedError(_WINDOWS_ONLY)

    def try_lock(self, fd: int) -> bool:
        if sys.platform == "win32":
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                return False
            return True
        raise NotImplementedError(_WINDOWS_ONLY)


def _native_api() -> Win32Api:
    if sys.platform == "win32":
        return windows_admin.PyWin32Api()
    return Win32Api()


def _registry_value(key: str, name: str) -> str | None:
    """A string value under HKEY_LOCAL_MACHINE, or None."""
    if sys.platform == "win32":
        access = winreg.KEY_READ | winreg.KEY_WOW64_64KEY
        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key, 0, access) as handle:
                value, _kind = winreg.QueryValueEx(handle, name)
        except OSError:
            return None
        return str(value) if value is not None else None
    raise NotImplementedError(_WINDOWS_ONLY)


def _oem_codepage() -> str:
    if sys.platform == "win32":
        return f"cp{ctypes.windll.kernel32.GetOEMCP()}"
    raise NotImplementedError(_WINDOWS_ONLY)


if sys.platform == "win32":

    def _kernel32() -> ctypes.WinDLL:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.CreateJobObjectW.restype = wintypes.HANDLE
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.SetInformationJobObject.argtypes = [
            wintypes.HANDLE,
            ctypes.c_int,
            ctypes.c_void_p,
            wintypes.DWORD,
        ]
        return kernel32


def job_for(kernel32: Any, pid: int) -> int | None:
    """A job object holding process ``pid``, that kills it and its children when its
    last handle closes; None if Windows refuses one. ``kernel32`` is the DLL.

    Children the command starts before it is assigned escape the job; the psutil
    fallback in kill_tree covers those still attached to the tree.
    """
    # Refused, the job still serves kill_tree; only a dying agent leaves it running.
    return windows_programs.program_job(
        kernel32, pid, prepare=lambda job: set_kill_on_close(kernel32, job, enabled=True)
    )


def set_kill_on_close(kernel32: Any, job: int, *, enabled: bool) -> bool:
    """Set or clear the job's JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE; False if refused."""
    limits = JobLimits()
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE if enabled else 0
    done = kernel32.SetInformationJobObject(
        job, _JOB_EXTENDED_LIMITS, ctypes.pointer(limits), ctypes.sizeof(limits)
    )
    return bool(done)
