"""Programs as the API shows them: definition without secrets, and the agent's news."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wcms.protocol.program_admin import ProgramEventOut, ProgramExitOut, ProgramOut
from wcms.protocol.programs import ProgramState, redact_probe_url
from wcms.server.store.program_events import ProgramEventRecord
from wcms.server.store.programs import ProgramRecord, SetRecord

# States in which a run of the program exists, so it has an uptime.
_UP = frozenset({ProgramState.STARTING, ProgramState.RUNNING, ProgramState.STOPPING})


def program_out(record: ProgramRecord, programs_set: SetRecord, *, now: datetime) -> ProgramOut:
    spec = record.spec
    stop = spec.get("stop") or {}
    status = record.status or {}
    probe = spec.get("probe")
    applied = programs_set.applied_revision
    uptime = None
    if record.started_at is not None and record.state in _UP:
        uptime = max(0.0, round((now - record.started_at).total_seconds(), 1))
    return ProgramOut(
        machine=record.machine_id,
        name=record.name,
        state=ProgramState(record.state),
        desired=record.desired,
        pid=record.pid,
        uptime_s=uptime,
        restarts=record.restarts,
        last_exit=exit_out(record.last_exit),
        players=record.players,
        max_players=status.get("max_players"),
        cpu_percent=record.cpu_percent,
        rss_bytes=record.rss_bytes,
        probe_ok=status.get("probe_ok"),
        error=status.get("error"),
        preset=record.preset,
        command=list(spec["command"]),
        cwd=spec.get("cwd"),
        env=dict(spec.get("env") or {}),
        secret_env=sorted(spec.get("secret_env") or {}),
        restart=spec["restart"],
        stop_command=stop.get("command"),
        stop_timeout_s=stop.get("timeout_s", 60),
        probe=redact_probe_url(probe["url"]) if probe else None,
        ready_line=spec.get("ready_line"),
        stop_line=spec.get("stop_line"),
        memory_limit_bytes=spec.get("memory_limit_bytes"),
        schedule=spec.get("schedule"),
        autostart=bool(spec.get("autostart")),
        restart_seq=record.restart_seq,
        restart_seq_applied=status.get("restart_seq"),
        revision=record.revision,
        applied_revision=applied,
        pending_sync=applied is None or applied < record.revision,
        reported_at=record.reported_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


# Free-form: ``data`` is a stored ProgramExit as JSON.
def exit_out(data: dict[str, Any] | None) -> ProgramExitOut | None:
    if not data:
        return None
    return ProgramExitOut(
        code=data.get("code"),
        signal=data.get("signal"),
        reason=str(data.get("reason", "")),
        at=data.get("at"),
        error=data.get("error"),
    )


def event_out(record: ProgramEventRecord) -> ProgramEventOut:
    return ProgramEventOut(
        seq=record.seq,
        at=record.at,
        from_state=ProgramState(record.from_state),
        to_state=ProgramState(record.to_state),
        reason=record.reason,
        detail=record.detail,
        exit=exit_out(record.exit),
    )
