"""Durable commands: create, deliver, record results, cancel, retry, expire, time out.

A command fans out into one run per target machine. Runs live in the database, so a
server restart loses nothing: a machine receives its queued and delivered runs again on
every (re)connection, best priority first, and the agent's journal makes sure it starts
each (run, attempt) at most once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.policy import check_command
from wcms.protocol import (
    COMMAND_TYPES,
    TERMINAL_STATES,
    CommandCreate,
    CommandPoll,
    ExecutePayload,
    RunEnvelope,
    RunResult,
    RunState,
    RunUpdate,
    parse_payload,
    redact_payload,
)
from wcms.protocol.commands import AGENT_REPORTABLE_STATES, REDACTED, reveal_secrets
from wcms.server.bus import Bus, InProcessBus
from wcms.server.crypto import Sealer
from wcms.server.errors import BadRequest, Conflict, NotFound, PolicyViolation
from wcms.server.services import routing
from wcms.server.services.audit import Actor, record
from wcms.server.services.batching import Batcher
from wcms.server.services.clock import utcnow
from wcms.server.services.links import LinkRegistry
from wcms.server.services.selectors import resolve_request
from wcms.server.settings import Settings
from wcms.server.store import commands as store
from wcms.server.telemetry import Telemetry

log = logging.getLogger("wcms.commands")


class Commands:
    """The command lifecycle, shared by the admin API and both agent transports."""

    def __init__(
        self,
        engine: AsyncEngine,
        registry: LinkRegistry,
        settings: Settings,
        sealer: Sealer,
        *,
        bus: Bus | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._engine = engine
        self._bus = bus or InProcessBus()
        self._telemetry = telemetry or Telemetry()
        self._registry = registry
        self._settings = settings
        self._sealer = sealer
        self._watchers: dict[int, asyncio.Event] = {}
        self._updates: Batcher[tuple[str, RunUpdate], None] = Batcher(
            self._apply_updates, max_batch=5000, name="run-updates"
        )
        self._pending: Batcher[str, list[Row[Any]]] = Batcher(
            self._load_pending, name="pending-runs"
        )

    # --- admin side -------------------------------------------------------------

    async def create(self, request: CommandCreate, *, actor: Actor) -> int:
        """Validate, resolve the selector, store the command and push it to live agents."""
        payload = _validate(request.type, request.payload)
        now = utcnow()
        expires_at = now + timedelta(seconds=request.expires_in_s) if request.expires_in_s else None
        secrets = reveal_secrets(payload)
        redacted = redact_payload(payload)
        deadline = now + timedelta(seconds=request.timeout_s + self._settings.run_timeout_slack)
        async with self._engine.begin() as conn:
            machine_ids = list(dict.fromkeys(await resolve_request(conn, request)))
            routes = await routing.plan(conn, request.type, payload, machine_ids)
            # Runs for connected agents are stored as delivered: one write for the
            # whole fleet, not a second round after sending.
            pushed = {
                route.machine_id
                for route in routes
                if route.refusal is None and self._pushes(route.deliver_to)
            }
            command_id, runs = await store.create(
                conn,
                {
                    "type": request.type,
                    "selector": request.selector,
                    "payload": redacted,
                    "sealed_secrets": self._sealer.seal(secrets) if secrets else None,
                    "priority": request.priority,
                    "timeout_s": request.timeout_s,
                    "max_retries": request.max_retries,
                    "expires_at": expires_at,
                    "created_at": now,
                    "created_by": actor.name,
                },
                machine_ids,
                delivered=pushed,
                deadline=deadline,
                relays={r.machine_id: r.deliver_to for r in routes if r.deliver_to != r.machine_id},
                refusals={r.machine_id: r.refusal for r in routes if r.refusal is not None},
            )
            await record(
                conn,
                actor,
                "command.create",
                target=str(command_id),
                detail={
                    "type": request.type,
                    "selector": request.selector,
                    "payload": redacted,
                    "targets": len(runs),
                },
            )
        run_of = {machine_id: run_id for run_id, machine_id in runs}
        routes = [route for route in routes if route.refusal is None]
        envelope = RunEnvelope(
            run_id=0,
            command_id=command_id,
            type=request.type,
            payload={**redacted, **secrets},
            timeout_s=request.timeout_s,
            priority=request.priority,
            expires_at=expires_at,
        )
        # Offered to every agent: one that long-polls is woken to fetch its run.
        _, unsent = await self._offer(
            [
                (
                    run_of[route.machine_id],
                    route.deliver_to,
                    envelope.model_copy(
                        update={
                            "run_id": run_of[route.machine_id],
                            "payload": {**envelope.payload, **route.extra},
                        }
                    ),
                )
                for route in routes
            ]
        )
        lost = sorted({run_of[machine_id] for machine_id in pushed} & set(unsent))
        if lost:
            async with self._engine.begin() as conn:
                await store.undeliver(
                    conn, lost, at=utcnow(), detail="the agent went away before delivery"
                )
        self._notify(command_id)
        return command_id

    def _pushes(self, machine_id: str) -> bool:
        link = self._registry.get(machine_id)
        return link is not None and link.pushes

    async def cancel(self, command_id: int, *, actor: Actor) -> int:
        """Cancel every unfinished run of a command; returns how many were cancelled."""
        now = utcnow()
        async with self._engine.begin() as conn:
            if await store.get_command(conn, command_id) is None:
                raise NotFound(f"no command {command_id}")
            runs = [r for r in await store.runs_of(conn, command_id) if r.state in store.ACTIVE]
            moved = await store.transition(
                conn,
                [r.id for r in runs],
                RunState.CANCELLED,
                at=now,
                values={"finished_at": now, "error": f"cancelled by {actor.name}"},
                detail=f"cancelled by {actor.name}",
            )
            await record(
                conn,
                actor,
                "command.cancel",
                target=str(command_id),
                detail={"cancelled": len(moved)},
            )
        cancelled = set(moved)
        for run in runs:
            link = self._registry.get(run.machine_id)
            if run.id in cancelled and run.state != RunState.QUEUED and link is not None:
                await link.cancel(run.id)
        self._notify(command_id)
        return len(moved)

    async def retry(self, command_id: int, *, actor: Actor) -> int:
        """Run again, as a new attempt, every run that failed, timed out, was cancelled or
        expired; returns how many were requeued."""
        now = utcnow()
        async with self._engine.begin() as conn:
            command = await store.get_command(conn, command_id)
            if command is None:
                raise NotFound(f"no command {command_id}")
            retryable = [
                r.id
                for r in await store.runs_of(conn, command_id)
                if r.state not in (RunState.SUCCEEDED, *store.ACTIVE)
            ]
            if not retryable:
                raise Conflict(
                    "nothing to retry: every run has succeeded or is still in progress",
                    code="nothing_to_retry",
                )
            moved = await store.requeue(conn, retryable, at=now, detail=f"retry by {actor.name}")
            span = (command.expires_at - command.created_at) if command.expires_at else None
            await store.extend_expiry(conn, moved, expires_at=now + span if span else None)
            await record(
                conn,
                actor,
                "command.retry",
                target=str(command_id),
                detail={"requeued": len(moved)},
            )
            rows = await store.runs_by_ids(conn, moved)
        await self._push([(row.run_id, row.machine_id, self._envelope(row)) for row in rows])
        self._notify(command_id)
        return len(moved)

    async def wait(self, command_id: int, *, timeout_s: float) -> bool:
        """Wait until every run of the command is final; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            event = self._watchers.setdefault(command_id, asyncio.Event())
            if await self.is_done(command_id):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # Also re-check now and then: another replica may have finished runs.
            with suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 2.0))

    async def is_done(self, command_id: int) -> bool:
        async with self._engine.connect() as conn:
            if await store.get_command(conn, command_id) is None:
                raise NotFound(f"no command {command_id}")
            summary = (await store.summaries(conn, [command_id]))[command_id]
        return all(RunState(state) in TERMINAL_STATES for state in summary)

    # --- agent side -------------------------------------------------------------

    async def deliver_pending(self, machine_id: str) -> None:
        """Send a (re)connected agent everything it should run, best priority first."""
        rows = await self._pending.submit(machine_id)
        if rows:
            await self._push([(row.run_id, machine_id, self._envelope(row)) for row in rows])

    async def _load_pending(self, machine_ids: list[str]) -> list[list[Row[Any]]]:
        async with self._engine.connect() as conn:
            pending = await store.pending_for_machines(conn, set(machine_ids), now=utcnow())
        return [pending.get(machine_id, []) for machine_id in machine_ids]

    async def poll(self, machine_id: str, *, cancels: Sequence[int]) -> CommandPoll:
        """What an HTTP-polling agent should run or cancel now (runs marked delivered)."""
        now = utcnow()
        async with self._engine.begin() as conn:
            rows = await store.pending_for_machine(conn, machine_id, now=now)
            queued = [row.run_id for row in rows if row.state == RunState.QUEUED]
            await store.mark_delivered(conn, queued, at=now, slack=self._settings.run_timeout_slack)
        return CommandPoll(runs=[self._envelope(row) for row in rows], cancels=list(cancels))

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
           result columns and event details.
        3. Failed or timed-out runs with retries left are requeued and pushed again.
        """
        now = utcnow()
        async with self._engine.begin() as conn:
            runs = await store.runs_for_updates(conn, {u.run_id for _, u in items})
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
            for (state, attempt), group in _grouped(started).items():
                await store.transition(
                    conn,
                    [u.run_id for u in group],
                    state,
                    at=now,
                    attempt=attempt,
                    values={"started_at": now},
                )
            moved: set[int] = set()
            reported_start = {u.run_id for u in started}
            for (state, attempt), group in _grouped(finished).items():
                ids = set(
                    await store.transition(
                        conn,
                        [u.run_id for u in group],
                        state,
                        at=now,
                        attempt=attempt,
                        values={"finished_at": now},
                        details={u.run_id: _describe(u.result) for u in group if u.result},
                    )
                )
                moved |= ids
                results = {
                    u.run_id: self._result_columns(
                        u.result, self._secret_values(runs[u.run_id].sealed_secrets)
                    )
                    for u in group
                    if u.result is not None and u.run_id in ids
                }
                # A run that ended quickly reports only its end: it started its
                # duration before that (and not before it was delivered).
                starts = {
                    u.run_id: _started(now, u.result, runs[u.run_id].delivered_at)
                    for u in group
                    if u.result is not None
                    and u.run_id in ids
                    and u.run_id not in reported_start
                    and runs[u.run_id].started_at is None
                }
                for run_id, at in starts.items():
                    results[run_id]["started_at"] = at
                await store.set_results(conn, results)
                await store.add_events_at(
                    conn, [(r, RunState.RUNNING, at) for r, at in starts.items()]
                )
            retry = [
                u.run_id
                for u in finished
                if u.run_id in moved
                and u.state in (RunState.FAILED, RunState.TIMED_OUT)
                and runs[u.run_id].attempt <= runs[u.run_id].max_retries
            ]
            rows = []
            if retry:
                await store.requeue(conn, retry, at=now, detail="automatic retry")
                rows = list(await store.runs_by_ids(conn, retry))
        self._telemetry.run_updates.inc(len(items))
        if rows:
            await self._push([(row.run_id, row.machine_id, self._envelope(row)) for row in rows])
        for command_id in {runs[u.run_id].command_id for u in valid}:
            self._notify(command_id)
        return [None] * len(items)

    async def sweep(self) -> None:
        """Expire queued runs past their expiry; time out runs whose agent never answered."""
        now = utcnow()
        async with self._engine.begin() as conn:
            expired = await store.transition(
                conn,
                await store.expired_queued(conn, now=now),
                RunState.EXPIRED,
                at=now,
                values={"finished_at": now, "error": "expired before the machine received it"},
            )
            overdue = await store.transition(
                conn,
                await store.overdue(conn, now=now),
                RunState.TIMED_OUT,
                at=now,
                values={"finished_at": now, "error": "no result from the agent in time"},
            )
            touched = await store.runs_by_ids(conn, expired + overdue)
        for command_id in {row.command_id for row in touched}:
            self._notify(command_id)

    # --- internals ----------------------------------------------------------------

    async def _offer(
        self, runs: Sequence[tuple[int, str, RunEnvelope]]
    ) -> tuple[list[int], list[int]]:
        """Offer runs to the agents connected here; returns the run ids (sent, not sent)."""
        sent: list[int] = []
        unsent: list[int] = []
        by_machine: dict[str, list[RunEnvelope]] = {}
        for _run_id, machine_id, envelope in runs:
            by_machine.setdefault(machine_id, []).append(envelope)
        for machine_id, envelopes in by_machine.items():
            link = self._registry.get(machine_id)
            ids = [envelope.run_id for envelope in envelopes]
            if link is not None and not link.closed and await link.offer(envelopes):
                sent += ids
            else:
                unsent += ids
        return sent, unsent

    async def _push(self, runs: Sequence[tuple[int, str, RunEnvelope]]) -> None:
        """Offer runs to the agents connected here and mark the sent ones delivered."""
        sent, _ = await self._offer(runs)
        if sent:
            async with self._engine.begin() as conn:
                await store.mark_delivered(
                    conn, sent, at=utcnow(), slack=self._settings.run_timeout_slack
                )

    def _envelope(self, row: Row[Any]) -> RunEnvelope:
        payload = dict(row.payload)
        if row.sealed_secrets:
            payload.update(self._sealer.unseal(row.sealed_secrets))
        return RunEnvelope(
            run_id=row.run_id,
            attempt=row.attempt,
            command_id=row.command_id,
            type=row.type,
            payload=payload,
            timeout_s=row.timeout_s,
            priority=row.priority,
            expires_at=row.run_expires_at,
        )

    def _secret_values(self, sealed: str | None) -> list[str]:
        if not sealed:
            return []
        values: list[str] = []
        for value in self._sealer.unseal(sealed).values():
            values += [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]
        return [v for v in values if v]

    def _result_columns(self, result: Any, secrets: Sequence[str]) -> dict[str, Any]:
        """Result columns, output capped and any secret the agent echoed masked again."""
        limit = self._settings.max_output_bytes
        stdout, out_cut = _cap(_mask(result.stdout, secrets), limit)
        stderr, err_cut = _cap(_mask(result.stderr, secrets), limit)
        return {
            "exit_code": result.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_truncated": result.stdout_truncated or out_cut,
            "stderr_truncated": result.stderr_truncated or err_cut,
            "duration_ms": result.duration_ms,
            "error": result.error,
            "result_data": result.data,
        }

    def _notify(self, command_id: int) -> None:
        self._bus.publish("command", {"id": command_id})
        event = self._watchers.pop(command_id, None)
        if event is not None:
            event.set()


def _started(finished: datetime, result: RunResult, delivered_at: datetime | None) -> datetime:
    started = finished - timedelta(milliseconds=result.duration_ms or 0)
    return max(started, delivered_at) if delivered_at is not None else started


def _validate(command_type: str, payload: dict[str, Any]) -> Any:
    if command_type not in COMMAND_TYPES:
        known = ", ".join(sorted(COMMAND_TYPES))
        raise BadRequest(
            f"unknown command type {command_type!r} (known: {known})",
            field="type",
            code="unknown_command_type",
        )
    try:
        model = parse_payload(command_type, payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        raise BadRequest(
            f"payload.{where}: {error['msg']}", field=f"payload.{where}", code="invalid_payload"
        ) from None
    if isinstance(model, ExecutePayload):
        refusal = check_command(model.command)
        if refusal is not None:
            raise PolicyViolation(refusal, field="payload.command")
    return model


def _grouped(updates: Sequence[RunUpdate]) -> dict[tuple[RunState, int], list[RunUpdate]]:
    groups: dict[tuple[RunState, int], list[RunUpdate]] = {}
    for update in updates:
        groups.setdefault((update.state, update.attempt), []).append(update)
    return groups


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _cap(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def _describe(result: Any) -> str | None:
    if result.error:
        return str(result.error)[:500]
    if result.exit_code is not None:
        return f"exit code {result.exit_code}"
    return None
