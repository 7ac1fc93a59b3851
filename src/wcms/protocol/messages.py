"""The agent <-> server protocol: HTTP bodies and WebSocket frames.

Both transports carry the same models. WebSocket frames are tagged by ``kind`` and
parsed with :func:`agent_frame` / :func:`server_frame`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator

from wcms.protocol.bounds import INT32_MAX, scrub
from wcms.protocol.commands import RunState
from wcms.protocol.model import MachineId as MachineId
from wcms.protocol.model import Model
from wcms.protocol.programs import ProgramAckFrame, ProgramReportFrame, ProgramSet, ProgramsFrame

# 2: agents may stream a running run's output and progress (RunProgress), and results
# may carry structured ``data``. Each side sends version-2 messages only to a peer that
# announced version 2 or later.
# 3: agents supervise programs (ProgramSet, ProgramReport; see protocol.programs).
PROTOCOL_VERSION = 3
PROGRESS_SINCE_VERSION = 2
PROGRAMS_SINCE_VERSION = 3


class DiskInfo(Model):
    mount: str = Field(max_length=1024)
    fstype: str = Field(default="", max_length=64)
    total: int = Field(ge=0, description="Bytes")


class Inventory(Model):
    """What a machine is: sent at enrolment and whenever the agent starts."""

    hostname: str = Field(min_length=1, max_length=255)
    os_name: str = Field(default="", max_length=64)
    os_version: str = Field(default="", max_length=255)
    os_pretty: str = Field(default="", max_length=255)
    arch: str = Field(default="", max_length=32)
    cpu_model: str = Field(default="", max_length=255)
    cpu_cores: int | None = Field(default=None, ge=0)
    cpu_threads: int | None = Field(default=None, ge=0)
    ram_total: int = Field(default=0, ge=0, description="Bytes")
    disks: list[DiskInfo] = Field(default_factory=list, max_length=256)
    macs: list[str] = Field(default_factory=list, max_length=64)
    ips: list[str] = Field(default_factory=list, max_length=256)
    agent_version: str = Field(default="", max_length=64)
    boot_time: datetime | None = None


class DiskUsage(Model):
    mount: str = Field(max_length=1024)
    total: int = Field(ge=0)
    used: int = Field(ge=0)
    percent: float = Field(ge=0, le=100)


class StatusReport(Model):
    """A heartbeat's measurements."""

    cpu_percent: float = Field(ge=0, le=100)
    ram_used: int = Field(ge=0)
    ram_total: int = Field(ge=0)
    ram_percent: float = Field(ge=0, le=100)
    disks: list[DiskUsage] = Field(default_factory=list, max_length=256)
    users: list[str] = Field(default_factory=list, max_length=256)
    uptime_s: float = Field(default=0, ge=0)
    process_count: int = Field(default=0, ge=0, le=INT32_MAX)


class RegisterRequest(Model):
    """``POST /api/client/register``: enrol with a token, or refresh inventory."""

    protocol_version: int = PROTOCOL_VERSION
    enrollment_token: str | None = Field(default=None, max_length=256)
    machine_id: MachineId
    inventory: Inventory


class RegisterResponse(Model):
    protocol_version: int = PROTOCOL_VERSION
    machine_id: str
    credential: str | None = Field(
        default=None, description="Present only when a new credential was issued"
    )
    heartbeat_interval: float
    poll_timeout: float


class HeartbeatRequest(Model):
    status: StatusReport


class ShutdownNotice(Model):
    reason: str = Field(default="shutdown", max_length=64)


class RunEnvelope(Model):
    """One run of a command, as the agent receives it."""

    run_id: int
    attempt: int = 1
    command_id: int
    type: str
    payload: dict[str, Any]
    timeout_s: float
    priority: int = 0
    expires_at: datetime | None = None
    expires_in_s: float | None = Field(
        default=None,
        description="Seconds the run had left before expiry when the server sent it: the "
        "agent judges expiry by this on its own monotonic clock, so a wrong wall clock "
        "does not matter",
    )


class RunResult(Model):
    """How a run ended. Output is text; NUL characters and lone surrogates in it
    become U+FFFD."""

    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: int | None = Field(default=None, ge=0, le=INT32_MAX)
    error: str | None = Field(default=None, description="Why the run failed, in words")
    data: dict[str, Any] | None = Field(
        default=None, description="Structured result of the action (a file id, a list...)"
    )
    interrupted: bool = Field(
        default=False,
        description="The agent stopped while the run was going: whether it completed is "
        "not known, so it is retried only if its command is idempotent",
    )

    @field_validator("stdout", "stderr", "error", mode="before")
    @classmethod
    def _scrub(cls, value: Any) -> Any:
        return scrub(value) if isinstance(value, str) else value


class RunUpdate(Model):
    """The agent's report on a run: it started, or it ended (with a result)."""

    run_id: int = Field(ge=1, le=2**62)
    attempt: int = Field(default=1, ge=1, le=1000)
    state: RunState
    result: RunResult | None = None


class RunProgress(Model):
    """Live news of a running run: output since the last report and how far it got.

    Best effort: a report lost on a dropped connection is not sent again, and the final
    result carries the whole output anyway. ``*_offset`` is where the chunk starts in
    the run's output (in characters), so the server can put chunks in place.
    """

    run_id: int = Field(ge=1, le=2**62)
    attempt: int = Field(default=1, ge=1, le=1000)
    stdout: str = Field(default="", max_length=1_000_000)
    stderr: str = Field(default="", max_length=1_000_000)
    stdout_offset: int = Field(default=0, ge=0)
    stderr_offset: int = Field(default=0, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)
    note: str | None = Field(default=None, max_length=500)

    @field_validator("stdout", "stderr", "note", mode="before")
    @classmethod
    def _scrub(cls, value: Any) -> Any:
        return scrub(value) if isinstance(value, str) else value


class FileRef(Model):
    """A file stored on the server: an upload to print, a screenshot."""

    id: str
    name: str = ""
    content_type: str = "application/octet-stream"
    size: int = Field(ge=0)
    sha256: str


class CommandPoll(Model):
    """``GET /api/client/command``: runs to start and runs to cancel, and the machine's
    programs when they differ from the ``programs_revision`` the agent polled with."""

    runs: list[RunEnvelope] = Field(default_factory=list)
    cancels: list[int] = Field(default_factory=list)
    programs: ProgramSet | None = None


# --- WebSocket frames -----------------------------------------------------------


class HelloFrame(Model):
    kind: Literal["hello"] = "hello"
    protocol_version: int = PROTOCOL_VERSION
    session_id: str = Field(min_length=1, max_length=64)
    inventory: Inventory | None = None
    programs_revision: int | None = Field(
        default=None, ge=0, description="The ProgramSet revision the agent holds"
    )


class HeartbeatFrame(Model):
    kind: Literal["heartbeat"] = "heartbeat"
    status: StatusReport


class RunUpdateFrame(Model):
    kind: Literal["run_update"] = "run_update"
    update: RunUpdate


class RunProgressFrame(Model):
    kind: Literal["run_progress"] = "run_progress"
    progress: RunProgress


class ShutdownFrame(Model):
    kind: Literal["shutdown"] = "shutdown"
    reason: str = Field(default="shutdown", max_length=64)


class WelcomeFrame(Model):
    kind: Literal["welcome"] = "welcome"
    protocol_version: int = PROTOCOL_VERSION
    machine_id: str
    heartbeat_interval: float
    server_time: datetime


class RunFrame(Model):
    kind: Literal["run"] = "run"
    run: RunEnvelope


class RunCancelFrame(Model):
    kind: Literal["cancel"] = "cancel"
    run_id: int


class RunAckFrame(Model):
    """The server has stored the agent's update for this run."""

    kind: Literal["ack"] = "ack"
    run_id: int
    attempt: int
    state: RunState


class ErrorFrame(Model):
    kind: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool = False


AgentFrame = Annotated[
    HelloFrame
    | HeartbeatFrame
    | RunUpdateFrame
    | RunProgressFrame
    | ShutdownFrame
    | ProgramReportFrame,
    Field(discriminator="kind"),
]
ServerFrame = Annotated[
    WelcomeFrame
    | RunFrame
    | RunCancelFrame
    | RunAckFrame
    | ErrorFrame
    | ProgramsFrame
    | ProgramAckFrame,
    Field(discriminator="kind"),
]

_agent_frames: TypeAdapter[AgentFrame] = TypeAdapter(AgentFrame)
_server_frames: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


def agent_frame(raw: str | bytes) -> AgentFrame:
    """Parse a frame sent by an agent; raises pydantic.ValidationError."""
    return _agent_frames.validate_json(raw)


def server_frame(raw: str | bytes) -> ServerFrame:
    """Parse a frame sent by the server; raises pydantic.ValidationError."""
    return _server_frames.validate_json(raw)


def dump(model: BaseModel) -> str:
    """Serialise a model for the wire."""
    return model.model_dump_json()
