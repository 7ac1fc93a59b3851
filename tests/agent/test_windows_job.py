"""The job object a Windows command runs in, at the kernel32 boundary: it kills the
command's processes when its last handle closes, which the agent's death does."""

from __future__ import annotations

import ctypes
from typing import Any

from wcms.agent.platform import windows
from wcms.agent.platform.windows import JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JobLimits


class RecordingKernel32:
    """Stands in for kernel32: records each call, with the limits set on a job."""

    def __init__(self, *, job: int = 0x1F4, process: int = 0x2A8, refuse: str = "") -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.limit_flags: list[int] = []
        self._job = job
        self._process = process
        self._refuse = refuse

    def _answer(self, name: str, value: int, *args: Any) -> int:
        self.calls.append((name, args))
        return 0 if name == self._refuse else value

    def CreateJobObjectW(self, attributes: None, name: None) -> int:
        return self._answer("CreateJobObjectW", self._job)

    def SetInformationJobObject(self, job: int, kind: int, info: Any, size: int) -> int:
        limits = info.contents
        assert isinstance(limits, JobLimits) and size == ctypes.sizeof(JobLimits)
        self.limit_flags.append(limits.BasicLimitInformation.LimitFlags)
        return self._answer("SetInformationJobObject", 1, job, kind)

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        return self._answer("OpenProcess", self._process, access, pid)

    def AssignProcessToJobObject(self, job: int, process: int) -> int:
        return self._answer("AssignProcessToJobObject", 1, job, process)

    def CloseHandle(self, handle: int) -> int:
        return self._answer("CloseHandle", 1, handle)


def test_the_limits_structure_has_the_windows_layout() -> None:
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(JobLimits) == 144  # JOBOBJECT_EXTENDED_LIMIT_INFORMATION, x64
    assert JobLimits.BasicLimitInformation.offset == 0
    assert JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE == 0x2000


def test_the_command_is_put_in_a_job_that_kills_it_when_closed() -> None:
    kernel32 = RecordingKernel32()
    assert windows.job_for(kernel32, 4321) == 0x1F4
    assert [name for name, _ in kernel32.calls] == [
        "CreateJobObjectW",
        "SetInformationJobObject",
        "OpenProcess",
        "AssignProcessToJobObject",
        "CloseHandle",
    ]
    # JobObjectExtendedLimitInformation, on the new job.
    assert kernel32.calls[1][1] == (0x1F4, 9)
    assert kernel32.limit_flags == [JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE]
    assert kernel32.calls[2][1] == (0x0101, 4321)  # PROCESS_SET_QUOTA | PROCESS_TERMINATE
    assert kernel32.calls[4][1] == (0x2A8,)  # the process handle, not the job


def test_a_process_that_cannot_be_assigned_gets_no_job() -> None:
    kernel32 = RecordingKernel32(refuse="AssignProcessToJobObject")
    assert windows.job_for(kernel32, 4321) is None
    assert kernel32.calls[-1] == ("CloseHandle", (0x1F4,))


def test_the_limit_is_cleared_by_setting_no_flags() -> None:
    """As close() does once the command is over: what it left in the background then
    lives on, as on Linux."""
    kernel32 = RecordingKernel32()
    assert windows.set_kill_on_close(kernel32, 0x1F4, enabled=False)
    assert kernel32.limit_flags == [0]


def test_windows_has_no_leftovers_to_look_for() -> None:
    assert windows.WindowsPlatform().kill_leftovers(4321, started=0.0) is None
