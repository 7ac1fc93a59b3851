"""Behaviour shared by the POSIX platforms (Linux, macOS)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

import psutil

from wcms.agent.platform.base import (
    START_TIME_TOLERANCE_S,
    Leftovers,
    Platform,
    ShellProcess,
    process_start_time,
)
from wcms.protocol import PowerPayload

# mypy skips the rest of this module when checking for Windows; at run time the
# platform package never imports it there.
assert sys.platform != "win32"

# The agent's own nice value: it yields the CPU to the machine's real work.
AGENT_NICENESS = 10
# How long killed leftovers of an interrupted command may take to go.
LEFTOVER_WAIT_S = 5.0
# Looks for leftovers: a process that forks while they are killed is found by the next.
_LEFTOVER_ROUNDS = 3


class PosixShellProcess(ShellProcess):
    """A command started as the leader of its own session, hence its own process group."""

    def kill_tree(self) -> None:
        # The group id is the leader's pid and lives on while any member does, so this
        # also reaches children whose parent shell already exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


class PosixPlatform(Platform):
    name = "posix"
    shell = "/bin/sh"

    def __init__(self) -> None:
        self._normal_niceness: int | None = None

    def lower_priority(self) -> None:
        # Sets rather than adds, so that calling it again changes nothing.
        try:
            current = os.getpriority(os.PRIO_PROCESS, 0)
            if self._normal_niceness is None:
                self._normal_niceness = current
            if current < AGENT_NICENESS:
                os.setpriority(os.PRIO_PROCESS, 0, AGENT_NICENESS)
        except OSError:
            return

    async def spawn_shell(
        self,
        command: str,
        *,
        cwd: str | None,
        env: Mapping[str, str],
        protocol: Callable[[], asyncio.SubprocessProtocol],
    ) -> ShellProcess:
        prefix = await self._shell_prefix()
        before = time.time()
        transport, _ = await asyncio.get_running_loop().subprocess_exec(
            protocol,
            *prefix,
            self.shell,
            "-c",
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
        pid = transport.get_pid()
        child = PosixShellProcess(transport, started=process_start_time(pid, fallback=before))
        self._restore_priority(pid)
        return child

    async def _shell_prefix(self) -> tuple[str, ...]:
        """What the shell's argv starts with, to make it die with the agent: nothing
        where the system has no way (the next start kills what is left)."""
        return ()

    def kill_leftovers(self, pid: int, *, started: float) -> Leftovers:
        """The shell led its own session and process group: what is left of the command
        is their members, killed with SIGKILL.

        A session or group id lives on while any member does, so it is not given to a
        new process meanwhile. Only processes that started no earlier than the shell
        count, and none if ``pid`` is now another process: then the command's group
        ended and its id was reused.
        """
        killed: dict[int, psutil.Process] = {}
        for _ in range(_LEFTOVER_ROUNDS):
            found = [p for p in _members(pid, started) if p.pid not in killed]
            if not found:
                break
            for process in found:
                try:
                    # psutil refuses to signal a pid that now names another process.
                    process.kill()
                except psutil.NoSuchProcess:
                    continue  # it ended by itself meanwhile
                except psutil.AccessDenied:
                    pass  # counted as still alive below
                killed[process.pid] = process
            # And what the group forked meanwhile.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        alive = _wait_gone(list(killed.values()), LEFTOVER_WAIT_S)
        return Leftovers(killed=len(killed) - alive, alive=alive)

    def _restore_priority(self, pid: int) -> None:
        """Give a command the priority the agent had before lowering its own.

        Children inherit the agent's lowered nice value. Raising it back needs
        privilege (root or CAP_SYS_NICE); without it the command keeps the agent's
        priority. This runs just after the fork, so a process the shell starts in its
        first instants may keep the lower priority: a small race, accepted because the
        alternative (``preexec_fn``) is unsafe in a process with threads.
        """
        if self._normal_niceness is None:
            return
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, self._normal_niceness)

    def power_command(self, action: str, payload: PowerPayload) -> list[str]:
        # shutdown(8) counts in whole minutes, so a delay is rounded up.
        when = "now" if payload.delay_s == 0 else f"+{math.ceil(payload.delay_s / 60)}"
        argv = ["shutdown", "-r" if action == "reboot" else "-h", when]
        if payload.message:
            argv.append(payload.message)
        return argv

    def install_stop_handler(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
    ) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, callback)

    def try_lock(self, fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _members(leader: int, started: float) -> list[psutil.Process]:
    """Running processes of the session or process group that ``leader`` led, started
    no earlier than it (``started``); none if ``leader`` is now another process."""
    try:
        head = psutil.Process(leader)
        if abs(head.create_time() - started) > START_TIME_TOLERANCE_S:
            return []
    except psutil.NoSuchProcess:
        pass  # the shell is gone; its group may live on
    except psutil.AccessDenied:
        return []  # cannot tell whose it is: leave it
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if leader not in (os.getpgid(process.pid), os.getsid(process.pid)):
                continue
            if process.create_time() < started - START_TIME_TOLERANCE_S:
                continue
            if process.status() == psutil.STATUS_ZOMBIE:
                continue  # already over, waiting for its parent to notice
        except (OSError, psutil.Error):
            continue
        found.append(process)
    return found


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> int:
    """Wait for killed processes to exit; returns how many are still running. A zombie
    counts as gone: its parent, not this process, must reap it."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in processes if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return len(alive)
        time.sleep(0.02)


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
