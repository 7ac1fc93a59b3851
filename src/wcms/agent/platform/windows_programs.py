"""Supervised programs on Windows: a process group and a job object that outlive the
agent, output appended to the console log.

Importable everywhere; the kernel32 calls take the DLL as an argument so that they can
be tested against a stand-in (``tests/agent/test_windows_programs.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from wcms.agent.platform.base import (
    START_TIME_TOLERANCE_S,
    ConsoleUnavailable,
    ProgramProcess,
    process_start_time,
)

if sys.platform == "win32":
    import msvcrt
    import subprocess
    from ctypes import wintypes

_PROCESS_TERMINATE = 0x0001
_PROCESS_SET_QUOTA = 0x0100
# CreateFileW: append-only access, so that every write lands at the end even after the
# agent cut the log's head; shared, so that the agent reads and cuts it meanwhile.
FILE_APPEND_DATA = 0x0004
_SYNCHRONIZE = 0x00100000
_FILE_SHARE_ALL = 0x1 | 0x2 | 0x4
_OPEN_ALWAYS = 4
_FILE_ATTRIBUTE_NORMAL = 0x80
_INVALID_HANDLE = ctypes.c_void_p(-1).value
# QueryInformationJobObject's JobObjectBasicProcessIdList, and how many pids it reads.
JOB_PROCESS_ID_LIST = 3
_MAX_JOB_PIDS = 1024


class JobProcessIds(ctypes.Structure):
    """JOBOBJECT_BASIC_PROCESS_ID_LIST with room for ``_MAX_JOB_PIDS`` pids."""

    _fields_ = [
        ("NumberOfAssignedProcesses", ctypes.c_uint32),
        ("NumberOfProcessIdsInList", ctypes.c_uint32),
        ("ProcessIdList", ctypes.c_size_t * _MAX_JOB_PIDS),
    ]


def program_job(
    kernel32: Any, pid: int, *, prepare: Callable[[int], object] | None = None
) -> int | None:
    """A job object holding process ``pid`` and what it starts, *without*
    KILL_ON_JOB_CLOSE: the game lives on when the agent's handle closes (an agent
    restart). None if Windows refuses one; the psutil tree then stands in.
    ``prepare`` sets the job up before the process joins it (a command's shell gets
    KILL_ON_JOB_CLOSE there)."""
    job = kernel32.CreateJobObjectW(None, None)
    if not job:
        return None
    if prepare is not None:
        prepare(job)
    process = kernel32.OpenProcess(_PROCESS_SET_QUOTA | _PROCESS_TERMINATE, False, pid)
    assigned = bool(process) and bool(kernel32.AssignProcessToJobObject(job, process))
    if process:
        kernel32.CloseHandle(process)
    if not assigned:
        kernel32.CloseHandle(job)
        return None
    return int(job)


def job_pids(kernel32: Any, job: int) -> list[int] | None:
    """The pids of the processes in ``job`` still running; None if Windows refuses."""
    ids = JobProcessIds()
    done = kernel32.QueryInformationJobObject(
        job, JOB_PROCESS_ID_LIST, ctypes.pointer(ids), ctypes.sizeof(ids), None
    )
    if not done:
        return None
    count = min(ids.NumberOfProcessIdsInList, _MAX_JOB_PIDS)
    return [int(ids.ProcessIdList[i]) for i in range(count)]


def append_handle(kernel32: Any, path: Path) -> int:
    """A handle to ``path`` (created if missing) that can only append."""
    handle = kernel32.CreateFileW(
        str(path),
        FILE_APPEND_DATA | _SYNCHRONIZE,
        _FILE_SHARE_ALL,
        None,
        _OPEN_ALWAYS,
        _FILE_ATTRIBUTE_NORMAL,
        None,
    )
    if not handle or handle == _INVALID_HANDLE:
        raise OSError(f"cannot open {path} to append to it")
    return int(handle)


class WindowsProgramProcess(ProgramProcess):
    """A program in its own process group and job object. Its stdin is a pipe held by
    the agent process that started it: a later agent process has none."""

    def __init__(
        self,
        pid: int,
        *,
        started: float,
        kernel32: Any,
        job: int | None,
        child: asyncio.subprocess.Process | None = None,
    ) -> None:
        super().__init__(pid, started=started, adopted=child is None)
        self._kernel32 = kernel32
        self._job = job
        self._child = child

    async def wait(self) -> int | None:
        if self._child is not None:
            return await self._child.wait()
        while _running(self.pid, self.started):
            await asyncio.sleep(self.poll_s)
        return None

    def terminate(self) -> None:
        # Reaches the group only where it shares the agent's console; the kill that
        # follows the signal timeout ends it otherwise.
        if sys.platform == "win32":
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.CTRL_BREAK_EVENT)

    def kill_tree(self) -> None:
        if self._job is not None:
            self._kernel32.TerminateJobObject(self._job, 1)
        for pid in self.remaining():
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()

    def remaining(self) -> list[int]:
        if self._job is not None:
            pids = job_pids(self._kernel32, self._job)
            if pids is not None:
                return pids
        try:
            root = psutil.Process(self.pid)
            if abs(root.create_time() - self.started) > START_TIME_TOLERANCE_S:
                return []
            return [root.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.Error:
            return []

    def write_input(self, text: str) -> None:
        stdin = self._child.stdin if self._child is not None else None
        if stdin is None or stdin.is_closing():
            raise ConsoleUnavailable(
                "its console input was held by the agent process that started it; "
                "it is back after the program's next start"
            )
        stdin.write(text.encode("utf-8"))

    def close(self) -> None:
        if self._job is not None:
            self._kernel32.CloseHandle(self._job)
            self._job = None


def _running(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)
        return bool(abs(process.create_time() - started) <= START_TIME_TOLERANCE_S)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


async def spawn(
    argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str], console: Path
) -> WindowsProgramProcess:
    """Start a program (see ``Platform.spawn_program``). NORMAL_PRIORITY_CLASS: it
    would otherwise inherit the agent's lowered priority, and never more than normal."""
    if sys.platform == "win32":
        kernel32 = _kernel32()
        output = msvcrt.open_osfhandle(append_handle(kernel32, console), os.O_APPEND)
        flags = (
            subprocess.CREATE_NEW_PROCESS_GROUP
            | subprocess.CREATE_NO_WINDOW
            | subprocess.NORMAL_PRIORITY_CLASS
        )
        before = time.time()
        try:
            child = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                cwd=cwd,
                env=dict(env),
                creationflags=flags,
            )
        finally:
            os.close(output)
        started = process_start_time(child.pid, fallback=before)
        job = program_job(kernel32, child.pid)
        return WindowsProgramProcess(
            child.pid, started=started, kernel32=kernel32, job=job, child=child
        )
    raise NotImplementedError("this needs Windows")


def adopt(pid: int, *, started: float) -> WindowsProgramProcess | None:
    """The program a previous agent process started, if it still runs. Its job object
    cannot be opened again (it has no name): its tree is found with psutil."""
    if sys.platform == "win32":
        if not _running(pid, started):
            return None
        return WindowsProgramProcess(pid, started=started, kernel32=_kernel32(), job=None)
    raise NotImplementedError("this needs Windows")


if sys.platform == "win32":

    def _kernel32() -> ctypes.WinDLL:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.CreateJobObjectW.restype = wintypes.HANDLE
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.CreateFileW.restype = wintypes.HANDLE
        kernel32.CreateFileW.argtypes = [
            wintypes.LPCWSTR,
            wintypes.DWORD,
            wintypes.DWORD,
            ctypes.c_void_p,
            wintypes.DWORD,
            wintypes.DWORD,
            wintypes.HANDLE,
        ]
        kernel32.QueryInformationJobObject.argtypes = [
            wintypes.HANDLE,
            ctypes.c_int,
            ctypes.c_void_p,
            wintypes.DWORD,
            ctypes.c_void_p,
        ]
        return kernel32
