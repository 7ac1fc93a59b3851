"""The command service that handlers and agent channels use."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress

from wcms.protocol import CommandCreate, CommandOut, CommandPoll, RunOut, RunUpdate
from wcms.protocol.commands import CommandFilter
from wcms.server.bus import Bus, InProcessBus
from wcms.server.crypto import Sealer
from wcms.server.services.audit import Actor
from wcms.server.services.commands.delivery import Delivery
from wcms.server.services.commands.lifecycle import Lifecycle
from wcms.server.services.commands.reports import Reports
from wcms.server.services.commands.views import CommandViews
from wcms.server.services.links import LinkRegistry
from wcms.server.settings import Settings
from wcms.server.store.engine import Database
from wcms.server.telemetry import Telemetry

# How often a waiter re-reads the runs even without news: another replica may have
# finished them.
RECHECK_S = 2.0


class Commands:
    """The command lifecycle, shared by the admin API, the dashboard and both agent
    transports."""

    def __init__(
        self,
        db: Database,
        registry: LinkRegistry,
        settings: Settings,
        sealer: Sealer,
        *,
        bus: Bus | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._bus = bus or InProcessBus()
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self.delivery = Delivery(db, registry, settings, sealer)
        self.views = CommandViews(db)
        self.lifecycle = Lifecycle(db, self.delivery, settings, sealer, notify=self._notify)
        self.reports = Reports(
            db,
            self.delivery,
            settings,
            sealer,
            telemetry=telemetry or Telemetry(),
            notify=self._notify,
        )

    # --- the admin side ------------------------------------------------------------

    async def create(self, request: CommandCreate, *, actor: Actor) -> int:
        return await self.lifecycle.create(request, actor=actor)

    async def cancel(self, command_id: int, *, actor: Actor) -> int:
        return await self.lifecycle.cancel(command_id, actor=actor)

    async def retry(self, command_id: int, *, actor: Actor) -> int:
        return await self.lifecycle.retry(command_id, actor=actor)

    async def get(self, command_id: int, *, events: bool = False, runs: bool = True) -> CommandOut:
        return await self.views.get(command_id, events=events, runs=runs)

    async def list_commands(
        self, *, limit: int, before_id: int | None = None, where: CommandFilter = CommandFilter()
    ) -> list[CommandOut]:
        """The newest commands first (older than ``before_id`` when given) that match."""
        return await self.views.list_commands(limit=limit, before_id=before_id, where=where)

    async def machine_runs(self, machine_id: str, *, limit: int) -> list[RunOut]:
        return await self.views.machine_runs(machine_id, limit=limit)

    async def wait(self, command_id: int, *, timeout_s: float) -> bool:
        """Wait until every run of the command is final; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        # Registered before the first check, so a change between the check and the
        # wait is not missed; removed however the wait ends, so none is left behind.
        event = asyncio.Event()
        self._waiters.setdefault(command_id, set()).add(event)
        try:
            while True:
                event.clear()  # before the check: news during the check wakes the wait
                if await self.views.is_done(command_id):
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(remaining, RECHECK_S))
        finally:
            waiters = self._waiters.get(command_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[command_id]

    def waiting(self) -> int:
        """How many waits are registered (for tests and the metrics)."""
        return sum(len(events) for events in self._waiters.values())

    # --- the agent side ------------------------------------------------------------

    async def deliver_pending(self, machine_id: str) -> None:
        await self.delivery.deliver_pending(machine_id)

    async def poll(self, machine_id: str, *, cancels: Sequence[int]) -> CommandPoll:
        return await self.delivery.poll(machine_id, cancels=cancels)

    async def apply_update(self, machine_id: str, update: RunUpdate) -> None:
        await self.reports.apply_update(machine_id, update)

    # --- the sweeper ---------------------------------------------------------------

    async def sweep(self) -> None:
        await self.lifecycle.sweep()

    def _notify(self, command_id: int) -> None:
        self._bus.publish("command", {"id": command_id})
        for event in self._waiters.get(command_id, ()):
            event.set()
