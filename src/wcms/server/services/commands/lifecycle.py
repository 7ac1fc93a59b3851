"""What an administrator does to commands (create, cancel, retry) and what time does
to their runs (expiry, time-out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from wcms.policy import check_command
from wcms.protocol import (
    COMMAND_TYPES,
    CommandCreate,
    ExecutePayload,
    RunEnvelope,
    RunState,
    parse_payload,
    redact_payload,
)
from wcms.protocol.commands import reveal_secrets
from wcms.protocol.payload import Payload
from wcms.server.crypto import Sealer
from wcms.server.errors import BadRequest, Conflict, NotFound, PolicyViolation
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.services.commands import routing
from wcms.server.services.commands.delivery import Delivery
from wcms.server.services.selectors import resolve_request
from wcms.server.settings import Settings
from wcms.server.store import commands as command_store
from wcms.server.store import queue
from wcms.server.store import runs as run_store
from wcms.server.store.commands import Births, NewCommand
from wcms.server.store.engine import Database
from wcms.server.store.queue import PendingRun
from wcms.server.store.runs import ACTIVE, Move


class Lifecycle:
    def __init__(
        self,
        db: Database,
        delivery: Delivery,
        settings: Settings,
        sealer: Sealer,
        *,
        notify: Callable[[int], None],
    ) -> None:
        self._db = db
        self._delivery = delivery
        self._settings = settings
        self._sealer = sealer
        self._notify = notify

    async def create(self, request: CommandCreate, *, actor: Actor) -> int:
        """Validate, resolve the selector, store the command and push it to live agents.

        Runs for agents connected here are stored as delivered (one write for the whole
        fleet, not a second round after sending); a push that fails puts its run back
        in the queue."""
        payload = validate(request.type, request.payload)
        now = utcnow()
        expires_at = now + timedelta(seconds=request.expires_in_s) if request.expires_in_s else None
        secrets = reveal_secrets(payload)
        redacted = redact_payload(payload)
        # Runs pushed now must be acknowledged by then, or they are queued again.
        deadline = now + timedelta(seconds=self._settings.delivery_timeout)
        async with self._db.begin() as conn:
            machine_ids = list(dict.fromkeys(await resolve_request(conn, request)))
            routes = await routing.plan(conn, request.type, payload, machine_ids)
            pushed = {
                route.machine_id
                for route in routes
                if route.refusal is None and self._delivery.pushes(route.deliver_to)
            }
            command_id, runs = await command_store.create(
                conn,
                NewCommand(
                    type=request.type,
                    selector=request.selector,
                    payload=redacted,
                    sealed_secrets=self._sealer.seal(secrets) if secrets else None,
                    priority=request.priority,
                    timeout_s=request.timeout_s,
                    max_retries=request.max_retries,
                    idempotent=request.idempotent,
                    expires_at=expires_at,
                    created_at=now,
                    created_by=actor.name,
                ),
                Births(
                    machine_ids,
                    delivered=pushed,
                    deadline=deadline,
                    relays={r.machine_id: r.deliver_to for r in routes if r.relayed},
                    refusals={r.machine_id: r.refusal for r in routes if r.refusal is not None},
                ),
            )
            detail = {
                "type": request.type,
                "selector": request.selector,
                "payload": redacted,
                "targets": len(runs),
            }
            await record(conn, actor, "command.create", target=str(command_id), detail=detail)
        run_of = {machine_id: run_id for run_id, machine_id in runs}
        envelope = RunEnvelope(
            run_id=0,
            command_id=command_id,
            type=request.type,
            payload={**redacted, **secrets},
            timeout_s=request.timeout_s,
            priority=request.priority,
            expires_at=expires_at,
            expires_in_s=request.expires_in_s,
        )
        _, unsent = await self._delivery.offer(
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
                if route.refusal is None
            ]
        )
        await self._delivery.undeliver(sorted({run_of[m] for m in pushed} & set(unsent)))
        self._notify(command_id)
        return command_id

    async def cancel(self, command_id: int, *, actor: Actor) -> int:
        """Cancel every unfinished run of a command; returns how many were cancelled."""
        now = utcnow()
        why = f"cancelled by {actor.name}"
        async with self._db.begin() as conn:
            if await command_store.get_command(conn, command_id) is None:
                raise NotFound(f"no command {command_id}")
            runs = [r for r in await run_store.of_command(conn, command_id) if r.state in ACTIVE]
            moved = await run_store.transition(
                conn, [r.id for r in runs], Move(RunState.CANCELLED, now, error=why, detail=why)
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
            if run.id in cancelled and run.state != RunState.QUEUED:
                await self._delivery.cancel(run.id, run.machine_id)
        self._notify(command_id)
        return len(moved)

    async def retry(self, command_id: int, *, actor: Actor) -> int:
        """Run again, as a new attempt, every run that failed, timed out, was cancelled or
        expired; returns how many were requeued."""
        now = utcnow()
        async with self._db.begin() as conn:
            command = await command_store.get_command(conn, command_id)
            if command is None:
                raise NotFound(f"no command {command_id}")
            retryable = [
                r.id
                for r in await run_store.of_command(conn, command_id)
                if r.state not in (RunState.SUCCEEDED, *ACTIVE)
            ]
            if not retryable:
                raise Conflict(
                    "nothing to retry: every run has succeeded or is still in progress",
                    code="nothing_to_retry",
                )
            moved = await run_store.requeue(
                conn, retryable, at=now, detail=f"retry by {actor.name}"
            )
            span = (command.expires_at - command.created_at) if command.expires_at else None
            await run_store.extend_expiry(conn, moved, expires_at=now + span if span else None)
            await record(
                conn,
                actor,
                "command.retry",
                target=str(command_id),
                detail={"requeued": len(moved)},
            )
            runs = await queue.pending_by_ids(conn, moved)
        await self._delivery.push(runs)
        self._notify(command_id)
        return len(moved)

    async def sweep(self) -> None:
        """Expire queued runs past their expiry; offer again delivered runs their agent
        never acknowledged (the link died unnoticed, and an agent that did get the run
        drops the duplicate): still delivered if the agent's link here took them, queued
        for its next connection otherwise; time out running runs whose agent sent no
        result in time."""
        now = utcnow()
        async with self._db.begin() as conn:
            expired = await run_store.transition(
                conn,
                await queue.expired_queued(conn, now=now),
                Move(RunState.EXPIRED, now, error="expired before the machine received it"),
            )
            overdue = await run_store.transition(
                conn,
                await queue.overdue(conn, RunState.RUNNING, now=now),
                Move(RunState.TIMED_OUT, now, error="no result from the agent in time"),
            )
            late = await queue.pending_by_ids(
                conn, await queue.overdue(conn, RunState.DELIVERED, now=now)
            )
            touched = await run_store.commands_of(
                conn, expired + overdue + [run.run_id for run in late]
            )
        if late:
            await self._offer_again(late, now=now)
        for command_id in touched:
            self._notify(command_id)

    async def _offer_again(self, late: Sequence[PendingRun], *, now: datetime) -> None:
        # Offered outside the transaction (a send may wait on a slow socket); the write
        # after it moves only runs still unacknowledged.
        live = [run for run in late if run.run_expires_at is None or run.run_expires_at > now]
        sent, _ = await self._delivery.offer(
            [(run.run_id, run.machine_id, self._delivery.envelope(run)) for run in live]
        )
        at = utcnow()
        async with self._db.begin() as conn:
            await run_store.redeliver(
                conn,
                sent,
                at=at,
                ack_within=self._settings.delivery_timeout,
                detail="not acknowledged by the agent in time; offered again",
            )
            taken = set(sent)
            await run_store.undeliver(
                conn,
                [run.run_id for run in late if run.run_id not in taken],
                at=at,
                detail="not acknowledged by the agent in time; queued for its next connection",
            )


# Free-form: ``payload`` is the request's, until its command type's model parses it.
def validate(command_type: str, payload: dict[str, Any]) -> Payload:
    """The payload parsed by its command type's model; refused by the command policy
    with the reason."""
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
