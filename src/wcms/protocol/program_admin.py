"""The admin API's bodies for programs (game servers), shared by the server and the CLI,
and the typed event the server publishes when a program crashes, hangs or recovers.

What the agent receives is :class:`wcms.protocol.programs.ProgramSpec`; these models are
what an administrator gives and sees. Secrets (``secret_env`` values, a probe URL's
password) go in and never come out: an answer names the secret variables only and shows
the probe URL with ``***`` for its password.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from cronsim import CronSim, CronSimError
from pydantic import ConfigDict, Field, SecretStr, field_validator

from wcms.protocol.admin import Body, Strict
from wcms.protocol.bounds import INT32_MAX
from wcms.protocol.model import MachineId
from wcms.protocol.programs import (
    Backoff,
    ProgramName,
    ProgramState,
    Reason,
    RestartPolicy,
    parse_probe_url,
)

PRESETS = ("palworld", "minecraft", "ark", "generic")
Preset = Literal["palworld", "minecraft", "ark", "generic"]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Text = Annotated[str, Field(max_length=500)]


def check_schedule(value: str) -> str:
    """``value`` if it is a five-field cron expression; ValueError saying what is wrong."""
    if len(value.split()) != 5:
        raise ValueError("a schedule is a cron expression of five fields, as '0 4 * * *'")
    try:
        CronSim(value, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"not a valid cron expression: {exc}") from None
    return value


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _check_probe(value: str | None) -> str | None:
    if value is not None:
        parse_probe_url(value)
    return value


def _check_command(value: list[str] | None) -> list[str] | None:
    if value is not None and (not value or not value[0].strip()):
        raise ValueError("the program's command line is empty")
    return value


class ProgramFields(Strict):
    """What a program's definition may set; None leaves it to its preset."""

    cwd: str | None = Field(default=None, max_length=4096)
    env: dict[EnvName, Annotated[str, Field(max_length=8192)]] = Field(
        default_factory=dict, max_length=256
    )
    secret_env: dict[EnvName, SecretStr] = Field(
        default_factory=dict, max_length=64, description="Sealed at rest, never shown again"
    )
    restart: RestartPolicy | None = None
    stop_command: Text | None = Field(default=None, description="Console or RCON stop command")
    stop_timeout_s: float | None = Field(default=None, ge=0, le=3600)
    save_command: Text | None = None
    announce: Text | None = Field(default=None, description="Sent before a stop; has {minutes}")
    probe: str | None = Field(
        default=None,
        max_length=2048,
        description="tcp://H:P, http(s)://…, rcon://:PASSWORD@H:P, a2s://H:P, "
        "minecraft://H:P or palworld://USER:PASSWORD@H:P",
    )
    probe_interval_s: float | None = Field(default=None, ge=1, le=3600)
    probe_grace_s: float | None = Field(default=None, ge=0, le=3600)
    probe_failures: int | None = Field(default=None, ge=1, le=100)
    probe_timeout_s: float | None = Field(default=None, gt=0, le=120)
    ready_line: Text | None = Field(default=None, description="A regex: the program is ready")
    stop_line: Text | None = Field(default=None, description="A regex: an in-game stop")
    memory_limit_bytes: int | None = Field(default=None, ge=1)
    schedule: str | None = Field(default=None, max_length=200, description="Cron: restarts")
    autostart: bool = Field(
        default=False, description="Start it now, and whenever its agent starts"
    )
    backoff: Backoff | None = None

    @field_validator("probe")
    @classmethod
    def _probe(cls, value: str | None) -> str | None:
        return _check_probe(value)

    @field_validator("ready_line", "stop_line")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value) if value is not None else None


class ProgramCreate(ProgramFields):
    """``POST /api/programs``: a new program on one machine, stopped unless autostart."""

    machine: MachineId
    name: ProgramName
    preset: Preset = "generic"
    command: list[Annotated[str, Field(max_length=8192)]] = Field(min_length=1, max_length=256)

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        _check_command(value)
        return value


class ProgramPatch(ProgramFields):
    """``PATCH /api/programs/{machine}/{name}``: the fields given replace the stored ones
    (null clears an optional one); ``env`` and ``secret_env`` are replaced whole."""

    command: list[Annotated[str, Field(max_length=8192)]] | None = Field(
        default=None, max_length=256
    )
    autostart: bool | None = None  # type: ignore[assignment]

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        return _check_command(value)


class ProgramExitOut(Body):
    code: int | None = None
    signal: int | None = None
    reason: str
    at: datetime | None = None
    error: str | None = None


class ProgramOut(Body):
    """A program's definition (secrets left out) and what its agent last reported."""

    machine: str
    name: str
    state: ProgramState = Field(description="As the agent last reported it")
    desired: Literal["running", "stopped"]
    pid: int | None = None
    uptime_s: float | None = None
    restarts: int = 0
    last_exit: ProgramExitOut | None = None
    players: int | None = None
    max_players: int | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    probe_ok: bool | None = None
    error: str | None = Field(default=None, description="What the agent says is wrong")
    preset: str
    command: list[str]
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: list[str] = Field(default_factory=list, description="Names only")
    restart: RestartPolicy
    stop_command: str | None = None
    stop_timeout_s: float
    probe: str | None = Field(default=None, description="Its password shown as ***")
    ready_line: str | None = None
    stop_line: str | None = None
    memory_limit_bytes: int | None = None
    schedule: str | None = None
    autostart: bool = False
    restart_seq: int = Field(default=0, description="Restart requests made")
    restart_seq_applied: int | None = Field(
        default=None, description="The restart request the agent last carried out"
    )
    revision: int = Field(description="The machine's program set revision of its last change")
    applied_revision: int | None = Field(
        default=None, description="The revision the agent last said it applies"
    )
    pending_sync: bool = Field(description="Its last change has not reached its agent yet")
    reported_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class ProgramEventOut(Body):
    """One state change of a program, as its agent numbered it."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    seq: int
    at: datetime
    from_state: ProgramState = Field(alias="from")
    to_state: ProgramState = Field(alias="to")
    reason: Reason
    detail: str | None = None
    exit: ProgramExitOut | None = None


class ProgramHistory(Body):
    """A program's measurements, one point per bucket, as parallel arrays: CPU averaged,
    memory and players both averaged and at their highest in the bucket."""

    machine: str
    name: str
    since: datetime
    bucket_s: int
    t: list[int] = Field(description="Bucket start, seconds since the epoch (UTC)")
    cpu: list[float | None] = Field(description="CPU percent (of one core), averaged")
    rss: list[float | None] = Field(description="Resident memory in bytes, averaged")
    rss_max: list[int | None]
    players: list[float | None] = Field(description="Players online, averaged")
    players_max: list[int | None]


class ProgramEventKind(StrEnum):
    """What the alert engine hears of programs (see :class:`ProgramEvent`)."""

    CRASHED = "program.crashed"
    CRASH_LOOP = "program.crash_loop"
    HUNG = "program.hung"
    RECOVERED = "program.recovered"  # running again after a crash, a hang or a loop
    STOPPED = "program.stopped"  # stopped on purpose (by a user, in game)


# The bus topic of ProgramEvent; "program" carries {"machine", "name"} for the dashboard.
PROGRAM_EVENT_TOPIC = "program_event"
PROGRAM_TOPIC = "program"


class ProgramEvent(Body):
    """Published on the bus (``program_event``) once per stored state change that
    matters: the data of the event is this model, ``model_dump(mode="json")``."""

    kind: ProgramEventKind
    machine: str
    name: str
    reason: Reason
    at: datetime
    seq: int = Field(ge=1, description="The agent's number of the change")
    exit_code: int | None = None
    detail: str | None = None
    restarts: int = Field(default=0, ge=0, le=INT32_MAX)
