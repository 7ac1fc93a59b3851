"""What the server sees of a program now: its state, its run, its cost, its probe."""

from __future__ import annotations

import time

from wcms.agent.supervisor.host import WAITING
from wcms.agent.supervisor.store import ProgramRecord
from wcms.agent.supervisor.watch import RunWatch
from wcms.protocol.programs import ProgramSpec, ProgramStatus


def program_status(
    spec: ProgramSpec, record: ProgramRecord, watch: RunWatch | None
) -> ProgramStatus:
    """The status of a program with ``record``; ``watch`` is its current run's, if
    it runs (usage and probe are known only then)."""
    now = time.time()
    uptime = None
    if record.started_at is not None and record.state not in WAITING:
        uptime = max(0.0, now - record.started_at.timestamp())
    next_in = None
    if record.state in WAITING and record.next_start_at is not None:
        next_in = max(0.0, record.next_start_at - now)
    usage = watch.usage if watch is not None else None
    verdict = watch.verdict if watch is not None else None
    window = spec.backoff.loop_window_s
    return ProgramStatus(
        name=spec.name,
        state=record.state,
        pid=record.pid,
        started_at=record.started_at,
        uptime_s=uptime,
        restarts=record.restarts,
        crashes=sum(1 for at in record.crashes if now - at < window),
        next_start_in_s=next_in,
        last_exit=record.last_exit,
        players=verdict.players if verdict else None,
        max_players=verdict.max_players if verdict else None,
        cpu_percent=usage.cpu_percent if usage else None,
        rss_bytes=usage.rss_bytes if usage else None,
        threads=usage.threads if usage else None,
        probe_ok=verdict.ok if verdict else None,
        probe_failures=verdict.failures if verdict else 0,
        restart_seq=record.restart_seq,
        error=record.error,
    )
