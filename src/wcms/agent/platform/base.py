"""The interface between the agent and its operating system.

Everything that differs between Linux, Windows and macOS sits behind :class:`Platform`
(and :class:`ShellProcess` for a running command), so the rest of the agent never
checks ``sys.platform``.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from wcms.agent.service import ServiceSpec
from wcms.protocol import PowerPayload
from wcms.protocol.actions import CreateUserPayload, PrintPayload

# Prefix of the app-specific machine id hash; changing it changes every machine's id.
_APP_ID_PREFIX = "wcms:"
# How far the start time the system reports for a process may be from the one recorded
# when it started (the system counts in clock ticks) for it to be the same process.
START_TIME_TOLERANCE_S = 1.0


def app_specific_id(raw: str) -> str:
    """An id derived from the OS machine id that does not reveal it, in the spirit of
    systemd's ``sd_id128_get_machine_app_specific``."""
    digest = hashlib.sha256((_APP_ID_PREFIX + raw.strip()).encode("utf-8")).hexdigest()
    return digest[:32]


def decode_utf8(data: bytes, *, complete: bool) -> str:
    """Decode as UTF-8, replacing bad bytes. When ``complete`` is false the data was cut
    off, so an incomplete character at the end is dropped rather than shown as junk."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data, final=complete)


def process_start_time(pid: int, *, fallback: float) -> float:
    """When process ``pid`` started, in seconds since the epoch; ``fallback`` (a time
    taken just before it was started) if it already ended and was reaped."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return fallback


@dataclass(frozen=True)
class OsInfo:
    name: str
    version: str
    pretty: str


@dataclass(frozen=True)
class Leftovers:
    """What a new agent process found still running of a command the previous one
    started and did not see end."""

    # Found running and killed.
    killed: int = 0
    # Found running and still there after the kill (no permission to kill them).
    alive: int = 0


class ShellProcess:
    """A running shell command, with the means to kill everything it started."""

    def __init__(self, transport: asyncio.SubprocessTransport, *, started: float) -> None:
        self.transport = transport
        # When the shell started, as the system records it: with the pid, it tells this
        # process from a later one given the same pid.
        self.started = started

    @property
    def pid(self) -> int:
        return self.transport.get_pid()

    @property
    def returncode(self) -> int | None:
        """The shell's exit status (negative: killed by that signal), None while running."""
        return self.transport.get_returncode()

    def kill_tree(self) -> None:
        """Kill the command and every process it started; never raises if they are
        already gone."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the pipes (and anything else held) once the command is over."""
        self.transport.close()


class ConsoleUnavailable(Exception):
    """The program's standard input cannot be written: the message says why."""


class ProgramProcess:
    """A supervised program (a game server): the leader of its own process group (a job
    object on Windows), started so that it outlives the agent.

    Either the agent's own child, whose exit :meth:`wait` learns from the system as it
    happens, with its status; or *adopted* by a later agent process, whose exit is
    found by polling every ``poll_s`` and whose status is unknown.
    """

    # How often an adopted program is looked at; the supervisor adapts it to the load.
    poll_s = 2.0

    def __init__(self, pid: int, *, started: float, adopted: bool) -> None:
        self.pid = pid
        # When it started, as the system records it: with the pid, it tells this
        # process from a later one given the same pid.
        self.started = started
        self.adopted = adopted

    async def wait(self) -> int | None:
        """Wait for the program to exit: its status (negative: killed by that signal,
        on POSIX), or None where it is not known (an adopted program)."""
        raise NotImplementedError

    def terminate(self) -> None:
        """Ask the whole group to end (SIGTERM; Ctrl+Break on Windows); never raises if
        it is gone."""
        raise NotImplementedError

    def kill_tree(self) -> None:
        """Kill the program and every process it started; never raises if gone."""
        raise NotImplementedError

    def remaining(self) -> list[int]:
        """Pids of the program's processes still running (its leader included)."""
        raise NotImplementedError

    def write_input(self, text: str) -> None:
        """Write ``text`` to the program's standard input; raises
        :class:`ConsoleUnavailable` saying why it cannot."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the agent holds of it; the program itself runs on."""


class Platform:
    """Operating-system specific behaviour of the agent. One instance per process."""

    name = "unknown"

    def os_machine_id(self) -> str | None:
        """The app-specific hash of the OS's own machine id, or None if there is none."""
        return None

    def default_state_dir(self) -> Path:
        """Where the agent keeps its credential and journal by default."""
        raise NotImplementedError

    def lower_priority(self) -> None:
        """Make the agent itself yield the CPU to the machine's real work."""

    def os_info(self) -> OsInfo:
        raise NotImplementedError

    def cpu_model(self) -> str:
        return ""

    async def spawn_shell(
        self,
        command: str,
        *,
        cwd: str | None,
        env: Mapping[str, str],
        protocol: Callable[[], asyncio.SubprocessProtocol],
    ) -> ShellProcess:
        """Start ``command`` through the platform's shell, in its own process group,
        stdin closed, stdout and stderr piped to ``protocol``. The shell and all it
        starts die with the agent where the system allows it; elsewhere
        :meth:`kill_leftovers` ends them when the agent starts again."""
        raise NotImplementedError

    def kill_leftovers(self, pid: int, *, started: float) -> Leftovers | None:
        """Kill what still runs of a command whose shell had ``pid`` and ``started`` at
        that time, started by a previous agent process that did not see it end (the
        agent was killed or stopped); wait for it to go. None where there is nothing to
        look for: the system ended the command's processes with the agent."""
        raise NotImplementedError

    async def spawn_program(
        self, argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str], console: Path
    ) -> ProgramProcess:
        """Start a supervised program in its own process group (session), at normal
        priority at most, stdout and stderr appended to the file ``console``; it
        outlives the agent. Its stdin sits beside ``console`` where the system lets a
        later agent process write to it. Raises ``OSError`` if it cannot start."""
        raise NotImplementedError

    def adopt_program(self, pid: int, *, started: float, console: Path) -> ProgramProcess | None:
        """The program a previous agent process started as ``pid`` at ``started``, if it
        still runs (None if it ended or the pid now names another process)."""
        raise NotImplementedError

    def decode_output(self, data: bytes, *, complete: bool) -> str:
        """Turn a command's output bytes into text."""
        return decode_utf8(data, complete=complete)

    def power_command(self, action: str, payload: PowerPayload) -> list[str]:
        """The argv that shuts down (``action="shutdown"``) or reboots the machine."""
        raise NotImplementedError

    def install_stop_handler(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
    ) -> None:
        """Call ``callback`` on the loop when the OS asks the agent to stop."""
        raise NotImplementedError

    def try_lock(self, fd: int) -> bool:
        """Take an exclusive lock on open file ``fd``; False if another process holds it."""
        raise NotImplementedError

    # The methods below carry out actions. Each raises ActionFailed with the reason in
    # words when it cannot, and NotImplementedError where the platform has no way.

    def protected_dirs(self) -> tuple[str, ...]:
        """Directories of the operating system itself, never a download destination."""
        return ()

    def package_command(self, package: str, *, root: Path) -> list[str]:
        """The argv that installs ``package`` by name from the system's repositories."""
        raise NotImplementedError

    def package_file_command(
        self, path: Path, kind: str, *, root: Path, args: list[str] | None
    ) -> list[str]:
        """The argv that installs the package file ``path`` of ``kind`` (deb, rpm, msi,
        exe) silently."""
        raise NotImplementedError

    async def create_user(self, payload: CreateUserPayload, *, root: Path) -> str:
        """Create a local account; returns a one-line summary."""
        raise NotImplementedError

    async def delete_user(self, username: str, *, root: Path, remove_home: bool) -> str:
        raise NotImplementedError

    async def set_password(self, username: str, password: str, *, root: Path) -> str:
        raise NotImplementedError

    async def print_file(self, path: Path, payload: PrintPayload) -> tuple[str, dict[str, Any]]:
        """Send ``path`` to a printer; returns a summary and data (the job id)."""
        raise NotImplementedError

    def default_display(self) -> str | None:
        """The display to capture when the command names none (None: the only one)."""
        return None

    def screen_unavailable(self) -> str | None:
        """Why this process cannot see the desktop, or None if it can try."""
        return None

    async def notify_users(self, text: str, title: str | None) -> str:
        """Show a message to the logged-in users."""
        raise NotImplementedError

    async def lock_sessions(self) -> str:
        raise NotImplementedError

    async def logoff(self, user: str | None) -> str:
        """Log ``user`` off, or everyone but the administrator accounts when None."""
        raise NotImplementedError

    def default_config_file(self) -> Path:
        """Where the agent's service reads its configuration."""
        raise NotImplementedError

    def install_service(self, spec: ServiceSpec) -> str:
        """Register and (if ``spec.start``) start the agent as a system service."""
        raise NotImplementedError

    def uninstall_service(self, spec: ServiceSpec) -> str:
        raise NotImplementedError
