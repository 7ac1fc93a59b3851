"""Heartbeats go to the database in batches, not one transaction each."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from sqlalchemy.exc import IntegrityError

from wcms.protocol import StatusReport
from wcms.server.bus import StatusFeed
from wcms.server.errors import StorageError
from wcms.server.services.clock import utcnow
from wcms.server.store import machines as machine_store
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
            await self.flush()
        await self.flush()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            try:
                await self._write(batch)
            except IntegrityError:
                # A machine was deleted while its heartbeat waited here: drop its rows.
                batch = await self._known_only(batch)
                await self._write(batch)
        except StorageError:
            # Kept for the next flush (the newest ones, within a bound): the database
            # may be back by then.
            log.warning("heartbeat batch of %d not written; will retry", len(batch))
            self._pending[:0] = batch[-self._batch * 4 :]
            return
        self._observe(batch)

    async def _write(self, batch: list[StatusRow]) -> None:
        async with self._db.begin() as conn:
            await status_store.write_batch(conn, batch)

    def _observe(self, batch: list[StatusRow]) -> None:
        telemetry = self._telemetry
        telemetry.heartbeats_written.inc(len(batch))
        now = utcnow()
        observe = telemetry.heartbeat_latency.observe
        for row in batch:
            observe((now - row[1]).total_seconds())

    async def _known_only(self, batch: list[StatusRow]) -> list[StatusRow]:
        async with self._db.connect() as conn:
            known = set(await machine_store.ids_where(conn))
        return [item for item in batch if item[0] in known]
