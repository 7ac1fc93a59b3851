"""The sweeper: once a second, close silent agent links and expire or time out runs."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from wcms.server.errors import StorageError
from wcms.server.services.commands import Commands
from wcms.server.services.presence import Presence

log = logging.getLogger("wcms.sweeper")

SWEEP_INTERVAL_S = 1.0


class Sweeper:
    """Runs :meth:`Presence.sweep` and :meth:`Commands.sweep` every ``interval`` seconds.

    A sweep that fails is logged and the next one runs as usual: a database that is
    away for a minute must not stop expiry for good."""

    def __init__(
        self, presence: Presence, commands: Commands, *, interval: float = SWEEP_INTERVAL_S
    ) -> None:
        self._presence = presence
        self._commands = commands
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sweeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> None:
        """One sweep, now."""
        await self._presence.sweep()
        await self._commands.sweep()

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except StorageError:
                # Said once per outage, not once a second.
                if not failing:
                    log.warning("sweeps fail: the database does not answer; retrying")
                failing = True
                continue
            except Exception:  # a sweep must never kill the worker; the next one retries
                log.exception("sweep failed")
                continue
            if failing:
                log.info("sweeps work again")
            failing = False
