"""Handing runs to agents: pushed to a WebSocket agent, fetched by a polling one."""

from __future__ import annotations

from collections.abc import Sequence

from wcms.protocol import CommandPoll, RunEnvelope, RunState
from wcms.server.crypto import Sealer
from wcms.server.services.batching import Batcher
from wcms.server.services.clock import utcnow
from wcms.server.services.links import LinkRegistry
from wcms.server.settings import Settings
from wcms.server.store import queue
from wcms.server.store import runs as store
from wcms.server.store.engine import Database
from wcms.server.store.queue import PendingRun

# (run id, machine whose agent carries it out, envelope)
Offer = tuple[int, str, RunEnvelope]


class Delivery:
    """Offers runs to the agents connected to this process and records what was sent."""

    def __init__(
        self, db: Database, registry: LinkRegistry, settings: Settings, sealer: Sealer
    ) -> None:
        self._db = db
        self._registry = registry
        self._settings = settings
        self._sealer = sealer
        self._pending: Batcher[str, list[PendingRun]] = Batcher(
            self._load_pending, name="pending-runs"
        )

    def pushes(self, machine_id: str) -> bool:
        """Whether the machine's agent is connected here and takes pushed runs now."""
        link = self._registry.get(machine_id)
        return link is not None and link.pushes

    async def offer(self, runs: Sequence[Offer]) -> tuple[list[int], list[int]]:
        """Offer runs to the agents connected here; returns the run ids (sent, not sent).

        An agent that long-polls is only woken: it fetches its runs itself."""
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

    async def cancel(self, run_id: int, machine_id: str) -> None:
        """Tell the machine's agent, if it is connected here, to stop a run."""
        link = self._registry.get(machine_id)
        if link is not None:
            await link.cancel(run_id)

    async def push(self, runs: Sequence[PendingRun]) -> None:
        """Offer stored runs to their agents and mark the sent ones delivered."""
        sent, _ = await self.offer(
            [(run.run_id, run.machine_id, self.envelope(run)) for run in runs]
        )
        if sent:
            async with self._db.begin() as conn:
                await store.mark_delivered(
                    conn, sent, at=utcnow(), ack_within=self._settings.delivery_timeout
                )

    async def undeliver(self, run_ids: Sequence[int]) -> None:
        """Runs stored as delivered whose push failed: queued again for the next
        connection (or poll) of their agent."""
        if run_ids:
            async with self._db.begin() as conn:
                await store.undeliver(
                    conn, run_ids, at=utcnow(), detail="the agent went away before delivery"
                )

    async def deliver_pending(self, machine_id: str) -> None:
        """Send a (re)connected agent everything it should run, best priority first."""
        runs = await self._pending.submit(machine_id)
        if runs:
            await self.push(runs)

    async def _load_pending(self, machine_ids: list[str]) -> list[list[PendingRun]]:
        async with self._db.connect() as conn:
            pending = await queue.pending_for_machines(conn, set(machine_ids), now=utcnow())
        return [pending.get(machine_id, []) for machine_id in machine_ids]

    async def poll(self, machine_id: str, *, cancels: Sequence[int]) -> CommandPoll:
        """What an HTTP-polling agent should run or cancel now (runs marked delivered)."""
        now = utcnow()
        async with self._db.begin() as conn:
            runs = (await queue.pending_for_machines(conn, [machine_id], now=now)).get(
                machine_id, []
            )
            queued = [run.run_id for run in runs if run.state == RunState.QUEUED]
            await store.mark_delivered(
                conn, queued, at=now, ack_within=self._settings.delivery_timeout
            )
        return CommandPoll(runs=[self.envelope(run) for run in runs], cancels=list(cancels))

    def envelope(self, run: PendingRun) -> RunEnvelope:
        """The run as its agent receives it, secrets unsealed, its expiry also as the
        time left (the agent's clock may be wrong)."""
        payload = dict(run.payload)
        if run.sealed_secrets:
            payload.update(self._sealer.unseal(run.sealed_secrets))
        left = None
        if run.run_expires_at is not None:
            left = round((run.run_expires_at - utcnow()).total_seconds(), 3)
        return RunEnvelope(
            run_id=run.run_id,
            attempt=run.attempt,
            command_id=run.command_id,
            type=run.type,
            payload=payload,
            timeout_s=run.timeout_s,
            priority=run.priority,
            expires_at=run.run_expires_at,
            expires_in_s=left,
        )
