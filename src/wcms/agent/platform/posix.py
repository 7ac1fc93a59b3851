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
from collections.abc import Callable, Mapping

from wcms.agent.platform.base import Platform, ShellProcess
from wcms.protocol import PowerPayload

# mypy skips the rest of this module when checking for Windows; at run time the
# platform package never imports it there.
assert sys.platform != "win32"

# The agent's own nice value: it yields the CPU to the machine's real work.
AGENT_NICENESS = 10


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
        transport, _ = await asyncio.get_running_loop().subprocess_exec(
            protocol,
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
        child = PosixShellProcess(transport)
        self._restore_priority(child.pid)
        return child

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
