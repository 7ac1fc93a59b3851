"""Agents' program reports, stored in batches: statuses, state changes, the ack.

Every agent reports with each heartbeat and on each change, so reports of many agents
go to the database together (a :class:`Batcher` round: one transaction for all). For
each report, in that transaction:

1. The statuses overwrite what was last reported of each program; a running program
   with no sample in the last ``sample_every_s`` gets one (its history).
2. The state changes not stored yet are stored; one already stored (re-sent after a
   lost ack, or by a second replica) is skipped, so it is stored, and told, once.
3. The new changes are judged in the agent's order for the alert engine
   (:mod:`.events`), and each program's trouble flag follows them.
4. The revision the agent applies and the highest seq stored are noted; the ack names
   that seq, and carries the set when the agent's revision is not the server's.

The events are published by the caller once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.program_admin import ProgramEvent
from wcms.protocol.programs import (
    ProgramReport,
    ProgramReportAck,
    ProgramSet,
    ProgramState,
    ProgramStatus,
    ProgramTransition,
)
from wcms.server.services.batching import Batcher
from wcms.server.services.clock import utcnow
from wcms.server.services.programs.events import classify, program_event
from wcms.server.store import program_events as event_store
from wcms.server.store import program_samples as sample_store
from wcms.server.store import programs as store
from wcms.server.store.engine import Database
from wcms.server.store.program_events import NewProgramEvent
from wcms.server.store.program_samples import NewSample
from wcms.server.store.programs import ReportedStatus

# (machine id, its report)
Report = tuple[str, ProgramReport]
SetLoader = Callable[[AsyncConnection, str], Awaitable[ProgramSet]]


@dataclass(frozen=True, slots=True)
class Applied:
    """What storing one report did."""

    ack: ProgramReportAck
    events: list[ProgramEvent]
    # Names of the programs whose status or history changed, for the dashboard.
    touched: list[str]


class ReportWriter:
    def __init__(self, db: Database, load_set: SetLoader, *, sample_every_s: float) -> None:
        self._db = db
        self._load_set = load_set
        self._sample_every = timedelta(seconds=sample_every_s)
        self._batch: Batcher[Report, Applied] = Batcher(self._store, name="program-reports")

    async def apply(self, machine_id: str, report: ProgramReport) -> Applied:
        return await self._batch.submit((machine_id, report))

    async def _store(self, reports: list[Report]) -> list[Applied]:
        async with self._db.begin() as conn:
            return [
                await self._store_one(conn, machine_id, report) for machine_id, report in reports
            ]

    async def _store_one(
        self, conn: AsyncConnection, machine_id: str, report: ProgramReport
    ) -> Applied:
        now = utcnow()
        await store.set_statuses(conn, machine_id, [_status(s, now) for s in report.statuses])
        await self._sample(conn, machine_id, report.statuses, now)
        # One change per seq, in the agent's order.
        changes = sorted({c.seq: c for c in report.events}.values(), key=lambda c: c.seq)
        new = await event_store.add(conn, [_event(machine_id, change) for change in changes])
        fresh = [change for change in changes if change.seq in new]
        events = await self._judge(conn, machine_id, fresh)
        stored = await store.record_report(
            conn,
            machine_id,
            applied=report.revision,
            acked_seq=max((change.seq for change in changes), default=0),
            at=now,
        )
        stale = stored.revision != report.revision
        programs = await self._load_set(conn, machine_id) if stale else None
        touched = sorted({s.name for s in report.statuses} | {c.name for c in fresh})
        return Applied(ProgramReportAck(seq=stored.acked_seq, programs=programs), events, touched)

    async def _sample(
        self, conn: AsyncConnection, machine_id: str, statuses: list[ProgramStatus], now: datetime
    ) -> None:
        """A history sample of each running program that has none recent enough."""
        running = {s.name: s for s in statuses if s.state == ProgramState.RUNNING}
        due = await sample_store.due(
            conn, machine_id, list(running), since=now - self._sample_every
        )
        samples = [
            NewSample(machine_id, name, now, s.cpu_percent, s.rss_bytes, s.players)
            for name, s in running.items()
            if name in due
        ]
        await sample_store.add(conn, samples)

    async def _judge(
        self, conn: AsyncConnection, machine_id: str, changes: list[ProgramTransition]
    ) -> list[ProgramEvent]:
        """The alert events of new changes, in order; the trouble flags updated."""
        if not changes:
            return []
        known = {p.name: p for p in await store.of_machines(conn, [machine_id])}
        troubled = {name: program.troubled for name, program in known.items()}
        events: list[ProgramEvent] = []
        for change in changes:
            kind, troubled_after = classify(change, troubled=troubled.get(change.name, False))
            troubled[change.name] = troubled_after
            if kind is not None:
                program = known.get(change.name)
                restarts = program.restarts if program is not None else 0
                events.append(program_event(machine_id, change, kind, restarts=restarts))
        await store.set_troubled(
            conn, machine_id, {name: flag for name, flag in troubled.items() if name in known}
        )
        return events


def _status(status: ProgramStatus, now: datetime) -> ReportedStatus:
    last_exit = status.last_exit.model_dump(mode="json") if status.last_exit else None
    return ReportedStatus(
        name=status.name,
        state=status.state.value,
        pid=status.pid,
        started_at=_aware(status.started_at),
        restarts=status.restarts,
        last_exit=last_exit,
        players=status.players,
        cpu_percent=status.cpu_percent,
        rss_bytes=status.rss_bytes,
        status=status.model_dump(mode="json"),
        reported_at=now,
    )


def _event(machine_id: str, change: ProgramTransition) -> NewProgramEvent:
    return NewProgramEvent(
        machine_id=machine_id,
        name=change.name,
        seq=change.seq,
        at=_aware(change.at) or change.at,
        from_state=change.from_state.value,
        to_state=change.to_state.value,
        reason=change.reason.value,
        detail=change.detail,
        exit=change.exit.model_dump(mode="json") if change.exit else None,
    )


def _aware(at: datetime | None) -> datetime | None:
    """An agent's time without a zone is UTC (the protocol's times are UTC)."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)
