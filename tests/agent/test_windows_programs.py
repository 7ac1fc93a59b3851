"""A supervised program on Windows, at the kernel32 boundary: its job object must not
kill it with the agent, its log handle only appends, and its tree is the job's."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from wcms.agent.platform import windows_programs
from wcms.agent.platform.base import ConsoleUnavailable
from wcms.agent.platform.windows_programs import (
    FILE_APPEND_DATA,
    JOB_PROCESS_ID_LIST,
    JobProcessIds,
)


class RecordingKernel32:
    """Stands in for kernel32: records each call."""

    def __init__(self, *, refuse: str = "", job_pids: tuple[int, ...] = ()) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._refuse = refuse
        self._job_pids = job_pids

    def _answer(self, name: str, value: int, *args: Any) -> int:
        self.calls.append((name, args))
        return 0 if name == self._refuse else value

    def CreateJobObjectW(self, attributes: None, name: None) -> int:
        return self._answer("CreateJobObjectW", 0x1F4)

    def SetInformationJobObject(self, *args: Any) -> int:
        return self._answer("SetInformationJobObject", 1)

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        return self._answer("OpenProcess", 0x2A8, access, pid)

    def AssignProcessToJobObject(self, job: int, process: int) -> int:
        return self._answer("AssignProcessToJobObject", 1, job, process)

    def CloseHandle(self, handle: int) -> int:
        return self._answer("CloseHandle", 1, handle)

    def QueryInformationJobObject(
        self, job: int, kind: int, info: Any, size: int, returned: None
    ) -> int:
        ids = info.contents
        assert isinstance(ids, JobProcessIds) and size == ctypes.sizeof(JobProcessIds)
        ids.NumberOfAssignedProcesses = len(self._job_pids)
        ids.NumberOfProcessIdsInList = len(self._job_pids)
        for i, pid in enumerate(self._job_pids):
            ids.ProcessIdList[i] = pid
        return self._answer("QueryInformationJobObject", 1, job, kind)

    def CreateFileW(self, path: str, access: int, share: int, *rest: Any) -> int:
        return self._answer("CreateFileW", 0x3C, path, access, share, *rest)


def test_the_program_job_does_not_kill_it_when_the_agent_goes() -> None:
    kernel32 = RecordingKernel32()
    assert windows_programs.program_job(kernel32, 4321) == 0x1F4
    names = [name for name, _ in kernel32.calls]
    # No limits set: in particular not KILL_ON_JOB_CLOSE.
    assert names == ["CreateJobObjectW", "OpenProcess", "AssignProcessToJobObject", "CloseHandle"]
    assert kernel32.calls[1][1] == (0x0101, 4321)
    assert kernel32.calls[3][1] == (0x2A8,)


def test_a_program_that_cannot_be_assigned_gets_no_job() -> None:
    kernel32 = RecordingKernel32(refuse="AssignProcessToJobObject")
    assert windows_programs.program_job(kernel32, 4321) is None
    assert kernel32.calls[-1] == ("CloseHandle", (0x1F4,))


def test_the_tree_is_the_processes_of_the_job() -> None:
    kernel32 = RecordingKernel32(job_pids=(4321, 4400, 4512))
    assert windows_programs.job_pids(kernel32, 0x1F4) == [4321, 4400, 4512]
    assert kernel32.calls == [("QueryInformationJobObject", (0x1F4, JOB_PROCESS_ID_LIST))]
    refused = RecordingKernel32(refuse="QueryInformationJobObject")
    assert windows_programs.job_pids(refused, 0x1F4) is None


def test_the_console_log_handle_can_only_append(tmp_path: Path) -> None:
    kernel32 = RecordingKernel32()
    path = tmp_path / "console.log"
    assert windows_programs.append_handle(kernel32, path) == 0x3C
    name, args = kernel32.calls[0]
    assert name == "CreateFileW" and args[0] == str(path)
    access, share = args[1], args[2]
    assert access & FILE_APPEND_DATA and not access & 0x0002  # no FILE_WRITE_DATA
    assert share == 0x7  # read, write, delete: the agent reads and cuts it meanwhile


def test_an_adopted_program_has_no_stdin() -> None:
    process = windows_programs.WindowsProgramProcess(
        4321, started=0.0, kernel32=RecordingKernel32(), job=None
    )
    assert process.adopted
    try:
        process.write_input("say hi\n")
    except ConsoleUnavailable as exc:
        assert "agent process that started it" in str(exc)
    else:
        raise AssertionError("an adopted program's stdin was written")
