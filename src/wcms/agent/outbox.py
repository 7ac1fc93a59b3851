"""Run updates waiting for the server to confirm it stored them.

The run manager puts updates here; whichever transport is connected sends them and
reports the server's acknowledgements back. An update stays until acknowledged, so it
is sent again after every reconnect. Final updates are also in the journal, which
survives restarts; the outbox is the in-memory queue in front of it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from wcms.agent.journal import Journal
from wcms.protocol import TERMINAL_STATES, RunState, RunUpdate

log = logging.getLogger(__name__)

RunKey = tuple[int, int]

# A run that ends this soon after it starts reports only its end: one message instead
# of two for the many commands that take milliseconds, which halves the traffic of a
# command sent to a whole fleet.
RUNNING_DELAY_S = 0.25


@dataclass(frozen=True)
class Queued:
    """An update and the outbox version at which it was queued: a sender that has sent
    that version of the entry need not send it again on the same connection."""

    update: RunUpdate
    version: int

    @property
    def key(self) -> RunKey:
        return (self.update.run_id, self.update.attempt)


class Outbox:
    """At most one pending update per run attempt: a final one replaces ``running``.

    A ``running`` update is held back for ``running_delay`` seconds before senders see
    it; a final update queued meanwhile replaces it, and the run reports only its end.
    """

    def __init__(self, journal: Journal, *, running_delay: float = RUNNING_DELAY_S) -> None:
        self._journal = journal
        self._running_delay = running_delay
        self._pending: dict[RunKey, Queued] = {}
        self._held: set[RunKey] = set()
        self._version = 0
        self._changed = asyncio.Event()

    def put(self, update: RunUpdate) -> None:
        """Queue ``update`` for sending. A ``running`` update never replaces a final one."""
        key = (update.run_id, update.attempt)
        current = self._pending.get(key)
        final = update.state in TERMINAL_STATES
        if current is not None and current.update.state in TERMINAL_STATES and not final:
            return
        self._version += 1
        queued = Queued(update, self._version)
        self._pending[key] = queued
        if final or self._running_delay <= 0:
            self._held.discard(key)
            self._notify()
        else:
            self._held.add(key)
            asyncio.get_running_loop().call_later(self._running_delay, self._release, queued)

    def pending(self) -> list[RunUpdate]:
        """Updates not yet acknowledged, held back or not, in the order first queued."""
        return [queued.update for queued in self._pending.values()]

    def queued(self) -> list[Queued]:
        """The updates to send now (not held back), with the version each was queued at."""
        return [queued for key, queued in self._pending.items() if key not in self._held]

    def _release(self, queued: Queued) -> None:
        if self._pending.get(queued.key) is queued and queued.key in self._held:
            self._held.discard(queued.key)
            self._version += 1
            self._notify()

    def ack(self, run_id: int, attempt: int, *, state: RunState) -> None:
        """The server stored the ``state`` update of this run attempt."""
        key = (run_id, attempt)
        if state in TERMINAL_STATES:
            self._journal.mark_acked(run_id, attempt)
        current = self._pending.get(key)
        if current is not None and current.update.state == state:
            del self._pending[key]
            self._held.discard(key)
            log.debug("run %s/%s: server stored %s", run_id, attempt, state.value)

    @property
    def version(self) -> int:
        """Grows whenever an update is queued; see :meth:`wait_for_change`."""
        return self._version

    async def wait_for_change(self, seen: int) -> int:
        """Wait until something was queued after version ``seen``; returns the version."""
        while self._version == seen:
            await self._changed.wait()
        return self._version

    def _notify(self) -> None:
        # Wake the current waiters; later ones wait on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()
