"""Behaviour shared by the POSIX platforms (Linux, macOS)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import math
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from wcms.agent.platform.base import (
    START_TIME_TOLERANCE_S,
    ConsoleUnavailable,
    Leftovers,
    Platform,
    ProgramProcess,
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
# A supervised program's stdin: a FIFO beside its console log.
STDIN_FIFO = "stdin"


class PosixShellProcess(ShellProcess):
    """A command started as the leader of its own session, hence its own process group."""

    def kill_tree(self) -> None:
        # The group id is the leader's pid and lives on while any member does, so this
        # also reaches children whose parent shell already exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


class PosixProgramProcess(ProgramProcess):
    """A program leading its own session; its stdin is a FIFO any agent process can
    write to, its leader's exit is learnt from a pidfd where Linux offers one."""

    def __init__(
        self,
        pid: int,
        *,
        started: float,
        fifo: Path,
        child: subprocess.Popen[bytes] | None = None,
    ) -> None:
        super().__init__(pid, started=started, adopted=child is None)
        self._fifo = fifo
        self._child = child

    async def wait(self) -> int | None:
        if self._child is None:
            while _leader_running(self.pid, self.started):
                await asyncio.sleep(self.poll_s)
            return None
        return await _wait_child(self._child, poll_s=self.poll_s)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)

    def kill_tree(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        # Members of the session that made a process group of their own.
        for process in _members(self.pid, self.started):
            with contextlib.suppress(psutil.Error):
                process.kill()

    def remaining(self) -> list[int]:
        return [process.pid for process in _members(self.pid, self.started)]

    def write_input(self, text: str) -> None:
        # Non-blocking: a program that stops reading its input must not stall the agent.
        try:
            fd = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENXIO, errno.ENOENT):
                raise ConsoleUnavailable("the program is not running") from exc
            raise ConsoleUnavailable(f"cannot open its console input: {exc}") from exc
        try:
            os.write(fd, text.encode("utf-8"))
        except BlockingIOError as exc:
            raise ConsoleUnavailable("its console input is full: it does not read it") from exc
        except OSError as exc:
            raise ConsoleUnavailable(f"cannot write to its console input: {exc}") from exc
        finally:
            os.close(fd)


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

    async def spawn_program(
        self, argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str], console: Path
    ) -> ProgramProcess:
        """Output goes to the log opened ``O_APPEND``, not to a pipe: a pipe would
        kill the program with SIGPIPE once the agent that read it is gone, and appends
        let the agent cut the log's head while the program writes. Its stdin is a FIFO
        it holds open read-write, so it never reads EOF, and an agent started later
        writes to it as this one does. No parent-death signal: it outlives the agent."""
        fifo = console.with_name(STDIN_FIFO)
        _make_fifo(fifo)
        stdin = os.open(fifo, os.O_RDWR)
        try:
            output = os.open(console, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            os.close(stdin)
            raise
        before = time.time()
        try:
            # Popen, not asyncio's subprocess: its exit is awaited on a pidfd below,
            # where asyncio (3.11) would give each game a thread blocked in waitpid;
            # the fork and exec themselves take a moment.
            child = subprocess.Popen(  # noqa: ASYNC220
                list(argv),
                stdin=stdin,
                stdout=output,
                stderr=output,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
            )
        finally:
            os.close(stdin)
            os.close(output)
        self._restore_program_priority(child.pid)
        started = process_start_time(child.pid, fallback=before)
        return PosixProgramProcess(child.pid, started=started, fifo=fifo, child=child)

    def adopt_program(self, pid: int, *, started: float, console: Path) -> ProgramProcess | None:
        if not _leader_running(pid, started):
            return None
        return PosixProgramProcess(pid, started=started, fifo=console.with_name(STDIN_FIFO))

    def _restore_program_priority(self, pid: int) -> None:
        """As :meth:`_restore_priority`, but never above normal (nice 0): a game
        server must not take the CPU from the machine's own work either."""
        if self._normal_niceness is None:
            return
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, max(self._normal_niceness, 0))

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


def _make_fifo(path: Path) -> None:
    """Make ``path`` a FIFO readable and writable by the owner only."""
    try:
        if stat.S_ISFIFO(os.lstat(path).st_mode):
            return
        path.unlink()
    except FileNotFoundError:
        pass
    os.mkfifo(path, 0o600)


async def _wait_child(child: subprocess.Popen[bytes], *, poll_s: float) -> int:
    """Wait for our child ``child`` to exit, and reap it: woken by its pidfd, without a
    thread; polled every ``poll_s`` where the system has no pidfd (macOS, Linux < 5.3)."""
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):
        while child.poll() is None:
            await asyncio.sleep(poll_s)
        return child.returncode
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        if child.poll() is None:
            await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return child.wait()


def _leader_running(pid: int, started: float) -> bool:
    """Whether ``pid`` still names the process that started at ``started``."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started) > START_TIME_TOLERANCE_S:
            return False
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; whose it is cannot be told better


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
