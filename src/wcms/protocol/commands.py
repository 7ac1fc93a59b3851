"""Command types, their payloads, and the run lifecycle.

A command is addressed to a selector; each machine it resolves to gets its own *run*,
which moves through :class:`RunState`. Payload models declare which of their fields hold
secrets (``secret_fields``) so the server can keep them out of storage, logs and results.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from wcms.protocol.actions import ACTION_PAYLOADS
from wcms.protocol.payload import Payload as Payload

REDACTED = "***"


class RunState(StrEnum):
    """Where one machine's run of a command stands."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


TERMINAL_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED, RunState.EXPIRED}
)
# States an agent may report; queued/delivered/expired are the server's to set.
AGENT_REPORTABLE_STATES = frozenset(
    {RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED}
)


class ExecutePayload(Payload):
    """Run a shell command line on the machine."""

    command: str = Field(min_length=1, max_length=8192, description="Shell command line")
    cwd: str | None = Field(default=None, max_length=4096)
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables")
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Environment variables whose values are secret: sealed at rest and "
        "masked in the command's output",
    )

    secret_fields: ClassVar[tuple[str, ...]] = ("secrets",)

    @field_validator("command")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("command must not be blank")
        if "\x00" in value:
            raise ValueError("command must not contain NUL bytes")
        return value

    @field_validator("env", "secrets")
    @classmethod
    def _env_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name or "=" in name or "\x00" in name or len(name) > 256:
                raise ValueError(f"invalid environment variable name: {name!r}")
        return value


class PowerPayload(Payload):
    """Shut down or reboot the machine through the agent's power backend."""

    delay_s: int = Field(default=0, ge=0, le=3600, description="Seconds before acting")
    message: str | None = Field(default=None, max_length=500, description="Shown to users")
    force: bool = Field(default=False, description="Do not wait for applications to close")


COMMAND_TYPES: dict[str, type[Payload]] = {
    "execute": ExecutePayload,
    "shutdown": PowerPayload,
    "reboot": PowerPayload,
    **ACTION_PAYLOADS,
}


def parse_payload(command_type: str, payload: dict[str, Any]) -> Payload:
    """Validate ``payload`` for ``command_type``; raises KeyError or pydantic.ValidationError."""
    return COMMAND_TYPES[command_type].model_validate(payload)


def redact_payload(model: Payload) -> dict[str, Any]:
    """The payload as JSON-able data with every secret value replaced by ``***``."""
    data = model.model_dump(mode="json")
    for name in model.secret_fields:
        value = data.get(name)
        if isinstance(value, dict):
            data[name] = dict.fromkeys(value, REDACTED)
        elif value is not None:
            data[name] = REDACTED
    return data


def reveal_secrets(model: Payload) -> dict[str, Any]:
    """Only the secret fields of ``model``, in clear, for sealing."""
    revealed: dict[str, Any] = {}
    for name in model.secret_fields:
        value = getattr(model, name)
        if isinstance(value, dict):
            revealed[name] = {k: _clear(v) for k, v in value.items()}
        elif value is not None:
            revealed[name] = _clear(value)
    return revealed


def _clear(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# A command's state, as the list filters it, from the states of its runs.
COMMAND_STATES = ("active", "succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class CommandFilter:
    """Which commands a list shows; every field given must hold."""

    type: str | None = None
    # active: a run not final yet; succeeded: every run succeeded; failed: a run failed,
    # timed out or expired; cancelled: a run cancelled.
    state: str | None = None
    selector: str | None = None  # a part of the selector, as typed
    created_by: str | None = None
