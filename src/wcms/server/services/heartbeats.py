"""Heartbeats go to the database in batches, not one transaction each."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from wcms.protocol import StatusReport
from wcms.server.bus import StatusFeed
from wcms.server.errors import StorageError
from wcms.server.services.clock import utcnow
from wcms.server.store import status as status_store
from wcms.server.store.engine import Database
from wcms.server.store.status import StatusRow
from wcms.server.telemetry import Telemetry

log = logging.getLogger("wcms.heartbeats")


class HeartbeatWriter:
    """Collects heartbeats and writes them every ``interval`` seconds or ``batch`` items.

    Losing the last second of heartbeats in a crash is acceptable; blocking every agent on
    its own fsync is not.
    """

    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.5,
        batch: int = 5000,
        feed: StatusFeed | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._db = db
        self._feed = feed
        self._telemetry = telemetry or Telemetry()
        self._interval = interval
        self._batch = batch
        self._pending: list[StatusRow] = []
        self._wake = asyncio.Event()
        self._stopping = False

    def submit(self, machine_id: str, report: StatusReport) -> None:
        self._pending.append(status_store.status_row(machine_id, utcnow(), report))
        if self._feed is not None:
            self._feed.offer(machine_id, report)
        if len(self._pending) >= self._batch:
            self._wake.set()

    async def run(self) -> None:
        """Flush in a loop until :meth:`stop`; the final flush happens on the way out."""
        while not self._stopping:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the writer serves the whole fleet: it must not die
                log.exception("heartbeat flush failed")
        await self.flush()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            written = await self._store(batch)
        except StorageError:
            # Kept for the next flush (the newest ones, within a bound): the database
            # may be back by then.
            log.warning("heartbeat batch of %d not written; will retry", len(batch))
            self._pending[:0] = batch[-self._batch * 4 :]
            return
        self._observe(written)

    async def _store(self, batch: list[StatusRow]) -> list[StatusRow]:
        """Write ``batch``; returns the rows written.

        A row that cannot be stored (its machine was deleted while it waited, a value
        the database refuses) is found by halving the batch, dropped and logged: one
        bad agent costs a few more statements, never the others' heartbeats. Only a
        database that is away (a retryable StorageError) fails the whole batch."""
        try:
            async with self._db.begin() as conn:
                await status_store.write_batch(conn, batch)
            return batch
        except StorageError as exc:
            if exc.retryable:
                raise
            problem: Exception = exc
        except Exception as exc:  # IntegrityError, or a value no driver can encode
            problem = exc
        if len(batch) == 1:
            log.warning("heartbeat of %s dropped: %s", batch[0][0], problem)
            return []
        half = len(batch) // 2
        return await self._store(batch[:half]) + await self._store(batch[half:])

    def _observe(self, batch: list[StatusRow]) -> None:
        telemetry = self._telemetry
        telemetry.heartbeats_written.inc(len(batch))
        now = utcnow()
        observe = telemetry.heartbeat_latency.observe
        for row in batch:
            observe((now - row[1]).total_seconds())
