"""Programs: long-running processes (game servers) an agent supervises.

The server keeps each program's definition and desired state; it sends a machine's whole
set (:class:`ProgramSet`, numbered by ``revision``) to its agent, which keeps it on disk
and supervises the processes even while the server is unreachable. The agent reports
each program's status and every state change (:class:`ProgramReport`); changes carry a
sequence number so that none is lost or stored twice across reconnects.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from wcms.protocol.bounds import INT32_MAX
from wcms.protocol.model import Model

ProgramName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Unique on its machine: letters, digits and . _ -",
    ),
]


class ProgramState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"  # ready: its ready line was seen or its first probe answered
    STOPPING = "stopping"
    BACKOFF = "backoff"  # ended unexpectedly; waits before the next start
    CRASH_LOOP = "crash_loop"  # too many crashes in the window; retried at the ceiling


class Reason(StrEnum):
    """Why a program changed state. The first eight end a run of the program."""

    USER_STOP = "user_stop"
    USER_RESTART = "user_restart"
    SCHEDULED_RESTART = "scheduled_restart"
    IN_GAME_STOP = "in_game_stop"  # exit 0 after its stop line (or a clean exit, per preset)
    CRASH = "crash"
    HANG = "hang"  # its liveness probe failed K times in a row
    OOM = "oom"  # killed by the system for lack of memory
    AGENT_STOPPED = "agent_stopped"  # it ended while no agent watched it
    MEMORY = "memory"  # its memory rule restarted it (RSS over the limit, nobody online)
    START_FAILED = "start_failed"  # the command line could not be run
    USER_START = "user_start"
    AUTOSTART = "autostart"
    RETRY = "retry"  # the backoff delay after a crash is over
    READY = "ready"
    ADOPTED = "adopted"  # found still running after an agent restart
    REMOVED = "removed"
    EXITED = "exited"  # exit 0 by itself, neither a crash nor an in-game stop


class RestartPolicy(StrEnum):
    NEVER = "never"
    ON_CRASH = "on-crash"
    ALWAYS = "always"


PROBE_SCHEMES = ("tcp", "http", "https", "rcon", "a2s", "minecraft", "palworld")


class ProbeUrl(Model):
    """A parsed probe URL (``tcp://H:P``, ``http(s)://…``, ``rcon://:PASSWORD@H:P``,
    ``a2s://H:P``, ``minecraft://H:P``, ``palworld://USER:PASSWORD@H:P``)."""

    scheme: Literal["tcp", "http", "https", "rcon", "a2s", "minecraft", "palworld"]
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    url: str  # as given, for http(s)

    @property
    def has_secret(self) -> bool:
        return bool(self.password)

    def redacted(self) -> str:
        """The URL with its password replaced by ``***``: safe to show and log."""
        return redact_probe_url(self.url)


_DEFAULT_PORTS = {"http": 80, "https": 443, "minecraft": 25565, "palworld": 8212}


def parse_probe_url(text: str) -> ProbeUrl:
    """Parse and check a probe URL; raises ``ValueError`` saying what is wrong."""
    if not text or len(text) > 2048 or any(ord(c) < 0x20 for c in text):
        raise ValueError("a probe URL is 1 to 2048 printable characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in PROBE_SCHEMES:
        raise ValueError(
            f"unknown probe scheme {scheme or '(none)'!r}; use one of "
            + ", ".join(f"{s}://" for s in PROBE_SCHEMES)
        )
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"a {scheme}:// probe needs a host, as {scheme}://127.0.0.1:PORT")
    port = port or _DEFAULT_PORTS.get(scheme)
    if not port:
        raise ValueError(f"a {scheme}:// probe needs a port, as {scheme}://{host}:PORT")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if scheme == "rcon" and not password:
        raise ValueError("an rcon:// probe needs the RCON password, as rcon://:PASSWORD@H:P")
    if scheme == "palworld" and not password:
        raise ValueError(
            "a palworld:// probe needs the admin password, as palworld://admin:PASSWORD@H:P"
        )
    return ProbeUrl(scheme=scheme, host=host, port=port, user=user, password=password, url=text)


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^@/]*)@")


def redact_probe_url(text: str) -> str:
    """``text`` with the password of its user info replaced by ``***``."""
    match = _USERINFO.match(text)
    if not match or ":" not in match.group(2):
        return text
    user = match.group(2).split(":", 1)[0]
    return f"{match.group(1)}{user}:***@{text[match.end() :]}"


class Probe(Model):
    """How the agent checks that a program is alive. A probe is ``hang`` only after
    ``failures`` misses in a row, counted from ``start_grace_s`` after its start."""

    url: str = Field(max_length=2048, description="The probe URL, password in clear")
    interval_s: float = Field(default=10, ge=1, le=3600)
    timeout_s: float = Field(default=5, gt=0, le=120)
    start_grace_s: float = Field(default=120, ge=0, le=3600)
    failures: int = Field(default=3, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _valid(cls, value: str) -> str:
        parse_probe_url(value)
        return value


class Backoff(Model):
    """Restart delays after crashes: ``initial_s`` doubling to ``max_s``; after
    ``loop_crashes`` crashes within ``loop_window_s`` the program is in ``crash_loop``
    and retried every ``max_s``; ``healthy_s`` of uptime forgives the crashes."""

    initial_s: float = Field(default=10, ge=0, le=86400)
    max_s: float = Field(default=600, ge=0, le=86400)
    loop_crashes: int = Field(default=5, ge=1, le=1000)
    loop_window_s: float = Field(default=600, gt=0, le=86400)
    healthy_s: float = Field(default=600, gt=0, le=86400)


class StopSequence(Model):
    """An intended stop, step by step: announce (a countdown for scheduled restarts),
    save, the stop command, wait ``timeout_s``, then a polite signal (SIGTERM; Ctrl+Break
    on Windows), wait ``signal_timeout_s``, then kill the whole process tree."""

    announce: str | None = Field(
        default=None, max_length=500, description="Text with {minutes}: sent before a stop"
    )
    countdown_min: list[int] = Field(default_factory=lambda: [10, 5, 1], max_length=10)
    save: str | None = Field(default=None, max_length=500, description="Save command")
    command: str | None = Field(default=None, max_length=500, description="Stop command")
    timeout_s: float = Field(default=60, ge=0, le=3600)
    signal_timeout_s: float = Field(default=10, ge=0, le=600)


class ProgramSpec(Model):
    """One program as its agent supervises it."""

    name: ProgramName
    command: list[str] = Field(min_length=1, max_length=256)
    cwd: str | None = Field(default=None, max_length=4096)
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    secret_env: dict[str, str] = Field(
        default_factory=dict, max_length=64, description="Secret variables, in clear in transit"
    )
    preset: str = "generic"
    restart: RestartPolicy = RestartPolicy.ON_CRASH
    stop: StopSequence = Field(default_factory=StopSequence)
    ready_line: str | None = Field(default=None, max_length=500, description="A regex")
    stop_line: str | None = Field(
        default=None, max_length=500, description="A regex: exit 0 after it is an in-game stop"
    )
    clean_exit_is_stop: bool = Field(
        default=False, description="Any exit 0 is an in-game stop (never restarted)"
    )
    probe: Probe | None = None
    backoff: Backoff = Field(default_factory=Backoff)
    memory_limit_bytes: int | None = Field(
        default=None, ge=1, description="Restart when RSS is above this and nobody is online"
    )
    schedule: str | None = Field(default=None, max_length=200, description="Cron: restarts")
    autostart: bool = False
    desired: Literal["running", "stopped"] = "stopped"
    restart_seq: int = Field(
        default=0,
        ge=0,
        description="Raised by each restart request; the agent restarts "
        "the program when it sees a higher one than it applied",
    )

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the program's command line is empty")
        if any(len(arg) > 8192 for arg in value):
            raise ValueError("an argument is longer than 8192 characters")
        return value

    @field_validator("ready_line", "stop_line")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ProgramSet(Model):
    """Every program of one machine, as the server wants them."""

    revision: int = Field(ge=0)
    programs: list[ProgramSpec] = Field(default_factory=list, max_length=256)


class ProgramExit(Model):
    """How a run of the program ended."""

    code: int | None = None
    signal: int | None = Field(default=None, ge=0, le=255)
    reason: Reason
    at: datetime
    error: str | None = Field(default=None, max_length=2000)
    tail: list[str] = Field(
        default_factory=list, max_length=50, description="Its last console lines"
    )


class ProgramStatus(Model):
    """A program's state and measurements now."""

    name: ProgramName
    state: ProgramState
    pid: int | None = Field(default=None, ge=0, le=INT32_MAX)
    started_at: datetime | None = None
    uptime_s: float | None = Field(default=None, ge=0)
    restarts: int = Field(default=0, ge=0, le=INT32_MAX)
    crashes: int = Field(default=0, ge=0, le=INT32_MAX, description="In the backoff window")
    next_start_in_s: float | None = Field(default=None, ge=0)
    last_exit: ProgramExit | None = None
    players: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_players: int | None = Field(default=None, ge=0, le=INT32_MAX)
    cpu_percent: float | None = Field(default=None, ge=0)
    rss_bytes: int | None = Field(default=None, ge=0)
    threads: int | None = Field(default=None, ge=0, le=INT32_MAX)
    probe_ok: bool | None = None
    probe_failures: int = Field(default=0, ge=0, le=INT32_MAX)
    restart_seq: int = Field(default=0, ge=0, description="The restart request applied")
    error: str | None = Field(default=None, max_length=2000)


class ProgramTransition(Model):
    """One state change, numbered by the agent (``seq`` rises by one per change)."""

    seq: int = Field(ge=1)
    name: ProgramName
    at: datetime
    from_state: ProgramState
    to_state: ProgramState
    reason: Reason
    detail: str | None = Field(default=None, max_length=2000)
    exit: ProgramExit | None = None


class ProgramReport(Model):
    """The agent's news of its programs: sent on every change and with heartbeats."""

    revision: int = Field(ge=0, description="The ProgramSet revision the agent applies")
    statuses: list[ProgramStatus] = Field(default_factory=list, max_length=256)
    events: list[ProgramTransition] = Field(default_factory=list, max_length=1000)


class ProgramReportAck(Model):
    """The server stored events up to ``seq``; ``programs`` is sent when the agent's
    revision is not the server's."""

    seq: int = Field(ge=0)
    programs: ProgramSet | None = None


class ProgramsFrame(Model):
    """Server → agent: the machine's programs (sent after the welcome and on change)."""

    kind: Literal["programs"] = "programs"
    set: ProgramSet


class ProgramReportFrame(Model):
    """Agent → server: statuses and state changes."""

    kind: Literal["program_report"] = "program_report"
    report: ProgramReport


class ProgramAckFrame(Model):
    """Server → agent: events up to ``seq`` are stored."""

    kind: Literal["program_ack"] = "program_ack"
    seq: int = Field(ge=0)
