"""Storing what agents report about their runs: started, finished, and how."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from wcms.protocol import RunResult, RunState, RunUpdate
from wcms.protocol.commands import AGENT_REPORTABLE_STATES
from wcms.server.crypto import Sealer
from wcms.server.errors import BadRequest
from wcms.server.services.batching import Batcher
from wcms.server.services.clock import utcnow
from wcms.server.services.commands.delivery import Delivery
from wcms.server.services.commands.masking import cap, mask, secret_values
from wcms.server.settings import Settings
from wcms.server.store import queue
from wcms.server.store import runs as store
from wcms.server.store.engine import Database
from wcms.server.store.queue import PendingRun
from wcms.server.store.runs import Move, ReportedRun, RunOutcome
from wcms.server.telemetry import Telemetry


class Reports:
    """Applies agents' run reports, many at once, in one transaction per round."""

    def __init__(
        self,
        db: Database,
        delivery: Delivery,
        settings: Settings,
        sealer: Sealer,
        *,
        telemetry: Telemetry,
        notify: Callable[[int], None],
    ) -> None:
        self._db = db
        self._delivery = delivery
        self._settings = settings
        self._sealer = sealer
        self._telemetry = telemetry
        self._notify = notify
        self._updates: Batcher[tuple[str, RunUpdate], None] = Batcher(
            self._apply_updates, max_batch=5000, name="run-updates"
        )

    async def apply_update(self, machine_id: str, update: RunUpdate) -> None:
        """Store an agent's report on one of its runs. Reports for runs that are not the
        machine's, stale attempts or runs already final change nothing (the agent still
        gets its acknowledgement, so it stops re-sending). Reports arriving together
        are stored together, in one transaction."""
        if update.state not in AGENT_REPORTABLE_STATES:
            raise BadRequest(f"an agent cannot report state {update.state.value!r}", field="state")
        await self._updates.submit((machine_id, update))

    async def _apply_updates(self, items: list[tuple[str, RunUpdate]]) -> list[None]:
        """Store a batch of run reports.

        1. Read every run concerned (one query); drop reports that do not fit the run.
        2. ``running`` reports move their runs first, then final reports, grouped by
           (state, attempt) into conditional updates; only runs that moved get their
           results and event details.
        3. Failed or timed-out runs with retries left are requeued and pushed again.
        """
        now = utcnow()
        async with self._db.begin() as conn:
            runs = await store.reported(conn, {u.run_id for _, u in items})
            valid = [
                update
                for machine_id, update in items
                if (run := runs.get(update.run_id)) is not None
                # A wake run is carried out by its relay, another machine.
                and machine_id in (run.machine_id, run.relay_id)
                and run.attempt == update.attempt
            ]
            started = [u for u in valid if u.state == RunState.RUNNING]
            finished = [u for u in valid if u.state != RunState.RUNNING]
            for (_, attempt), group in _grouped(started).items():
                await store.mark_running(
                    conn,
                    {u.run_id: runs[u.run_id].timeout_s for u in group},
                    at=now,
                    attempt=attempt,
                    slack=self._settings.run_timeout_slack,
                )
            moved: set[int] = set()
            reported_start = {u.run_id for u in started}
            for (state, attempt), group in _grouped(finished).items():
                details = {u.run_id: _describe(u.result) for u in group if u.result}
                ids = set(
                    await store.transition(
                        conn,
                        [u.run_id for u in group],
                        Move(state, now, attempt=attempt, details=details),
                    )
                )
                moved |= ids
                outcomes = {
                    u.run_id: self._outcome(
                        u.result, runs[u.run_id], now=now, reported_start=reported_start
                    )
                    for u in group
                    if u.result is not None and u.run_id in ids
                }
                await store.set_outcomes(conn, outcomes)
            retry = [
                u.run_id
                for u in finished
                if u.run_id in moved
                and u.state in (RunState.FAILED, RunState.TIMED_OUT)
                and runs[u.run_id].attempt <= runs[u.run_id].max_retries
                # Whether an interrupted run did its work is not known: only a command
                # safe to run twice runs again.
                and (not (u.result and u.result.interrupted) or runs[u.run_id].idempotent)
            ]
            again: list[PendingRun] = []
            if retry:
                await store.requeue(conn, retry, at=now, detail="automatic retry")
                again = await queue.pending_by_ids(conn, retry)
        self._telemetry.run_updates.inc(len(items))
        if again:
            await self._delivery.push(again)
        for command_id in {runs[u.run_id].command_id for u in valid}:
            self._notify(command_id)
        return [None] * len(items)

    def _outcome(
        self, result: RunResult, run: ReportedRun, *, now: datetime, reported_start: set[int]
    ) -> RunOutcome:
        """What to store of a result: output capped, any secret the agent echoed masked
        again, and for a run that ended before it reported its start, when it started."""
        secrets = secret_values(self._sealer, run.sealed_secrets)
        limit = self._settings.max_output_bytes
        stdout, out_cut = cap(mask(result.stdout, secrets), limit)
        stderr, err_cut = cap(mask(result.stderr, secrets), limit)
        started_at = None
        if run.id not in reported_start and run.started_at is None:
            started_at = _started(now, result, run.delivered_at)
        return RunOutcome(
            exit_code=result.exit_code,
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=result.stdout_truncated or out_cut,
            stderr_truncated=result.stderr_truncated or err_cut,
            duration_ms=result.duration_ms,
            error=result.error,
            result_data=result.data,
            started_at=started_at,
        )


def _started(finished: datetime, result: RunResult, delivered_at: datetime | None) -> datetime:
    """A quick run reports only its end: it started its duration before that, and not
    before it was delivered."""
    started = finished - timedelta(milliseconds=result.duration_ms or 0)
    return max(started, delivered_at) if delivered_at is not None else started


def _grouped(updates: Sequence[RunUpdate]) -> dict[tuple[RunState, int], list[RunUpdate]]:
    groups: dict[tuple[RunState, int], list[RunUpdate]] = {}
    for update in updates:
        groups.setdefault((update.state, update.attempt), []).append(update)
    return groups


def _describe(result: RunResult) -> str | None:
    if result.error:
        return str(result.error)[:500]
    if result.exit_code is not None:
        return f"exit code {result.exit_code}"
    return None
