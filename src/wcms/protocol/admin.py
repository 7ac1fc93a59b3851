"""The admin API's request and response bodies, shared by the server and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wcms.protocol.bounds import Bounded
from wcms.protocol.commands import RunState
from wcms.protocol.messages import Inventory, RunResult, StatusReport


class Body(BaseModel):
    """Base of the admin API's bodies. Validators are built on first use: the agent
    imports this package but never these models, and must stay small."""

    model_config = ConfigDict(defer_build=True)


class Strict(Body, Bounded):
    """An input body: unknown fields refused, every value storable (see bounds)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class ErrorBody(Body):
    code: str
    message: str
    field: str | None = None


class MachineOut(Body):
    id: str
    hostname: str
    status: str = Field(description='"online" or "offline"')
    status_reason: str | None = None
    status_changed_at: datetime | None = None
    last_seen_at: datetime | None = None
    room: str | None = None
    seat: str | None = None
    tags: list[str] = Field(default_factory=list)
    transport: str | None = None
    ip: str | None = None
    os: str = ""
    agent_version: str = ""
    inventory: Inventory | None = None
    last_status: StatusReport | None = None
    conflict: dict[str, Any] | None = Field(
        default=None, description="Set when two live agents claimed this machine's id"
    )
    revoked: bool = False
    created_at: datetime | None = None


class MachinePatch(Strict):
    room: str | None = Field(default=None, max_length=128)
    seat: str | None = Field(default=None, max_length=64)
    tags: list[str] | None = Field(default=None, max_length=64)


class PresenceEventOut(Body):
    status: str
    reason: str
    at: datetime


class CommandCreate(Strict):
    selector: str = Field(
        min_length=1,
        max_length=512,
        description="A machine id or hostname, room:NAME, tag:NAME, online or all; "
        "several separated by commas",
        pattern=r"^[^\x00-\x1f\x7f]+$",
    )
    type: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-100, le=100, description="Higher runs first")
    timeout_s: float = Field(default=300, gt=0, le=86400)
    max_retries: int = Field(
        default=0, ge=0, le=10, description="Retries of a run that failed or timed out"
    )
    idempotent: bool = Field(
        default=False,
        description="Safe to run again: a run its agent was interrupted in (crash, power "
        "loss) is retried too; otherwise such a run is reported failed and not repeated",
    )
    expires_in_s: float | None = Field(
        default=86400, gt=0, le=30 * 86400, description="Drop queued runs after this long"
    )


class RunEventOut(Body):
    state: str
    at: datetime
    detail: str | None = None


class RunLiveOut(Body):
    """What a running run reported so far (see RunProgress)."""

    percent: float | None = None
    note: str | None = None
    stdout: str = ""
    stderr: str = ""


class RunOut(Body):
    id: int
    command_id: int | None = Field(default=None, description="The command this run is of")
    type: str | None = Field(default=None, description="The command's type")
    machine_id: str
    hostname: str | None = None
    state: RunState
    attempt: int
    created_at: datetime
    delivered_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: RunResult | None = None
    events: list[RunEventOut] | None = None
    live: RunLiveOut | None = Field(default=None, description="Progress of a running run")
    relay: str | None = Field(default=None, description="Machine that carried out a wake")


class CommandOut(Body):
    id: int
    type: str
    selector: str
    payload: dict[str, Any]
    priority: int
    timeout_s: float
    max_retries: int
    idempotent: bool = False
    created_at: datetime
    expires_at: datetime | None = None
    created_by: str | None = None
    summary: dict[str, int] = Field(default_factory=dict, description="Runs per state")
    done: bool = False
    runs: list[RunOut] = Field(default_factory=list)


class EnrollTokenCreate(Strict):
    uses: int = Field(default=1, ge=1, le=100000)
    ttl_s: float = Field(default=86400, gt=0, le=365 * 86400)
    note: str | None = Field(default=None, max_length=200)
    room: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[\w.@-][\w .@-]{0,127}$",
        description="Machines this token enrols start in this room",
    )


class EnrollTokenOut(Body):
    id: str
    uses: int
    used: int
    expires_at: datetime
    created_at: datetime
    revoked: bool = False
    note: str | None = None
    room: str | None = None
    token: str | None = Field(default=None, description="Shown once, at creation")


class ApiKeyCreate(Strict):
    name: str = Field(min_length=1, max_length=100)


class ApiKeyOut(Body):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked: bool = False
    key: str | None = Field(default=None, description="Shown once, at creation")


class FileOut(Body):
    """A file stored on the server: uploaded to print, or a screenshot."""

    id: str
    kind: str = Field(description='"upload" or "screenshot"')
    name: str
    content_type: str
    size: int
    sha256: str
    machine_id: str | None = None
    run_id: int | None = None
    created_at: datetime
    created_by: str | None = None


class ActionPolicyIn(Strict):
    disabled: list[str] = Field(
        default_factory=list, max_length=64, description="Command types switched off"
    )


class ActionPolicyOut(Body):
    scope: str = Field(description='"machine:ID" or "room:NAME"')
    disabled: list[str]
    updated_at: datetime
    updated_by: str | None = None
