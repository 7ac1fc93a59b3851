"""Many concurrent calls, one database round: the batcher behind the hot paths.

A thousand agents connecting at once each need their credential looked up, their
presence written and their pending runs read. Done one by one, that is thousands of
transactions fighting over a pool of a few connections. A :class:`Batcher` lets each
caller await its own result while the work runs in batches: the first call starts a
round; calls that arrive while a round runs wait for the next one, which takes them
all. At low load a call costs one round, as before; under load rounds grow instead
of queueing, and one batcher never holds more than one database connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from wcms.server.errors import StorageError

log = logging.getLogger("wcms.batching")

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs ``handle`` over batches of submitted items.

    ``handle`` receives the items of one round and returns one result per item, in
    order; a result that is an exception is raised to that item's caller only. If
    ``handle`` itself raises because the database is away, every caller of the round
    gets the exception; if it raises for any other reason (a value the database
    refuses), the round is halved and each half tried again, so that one bad item
    fails its own caller only and never the others of its round.
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 2000,
        name: str = "batch",
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._round: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._round is None:
            self._round = asyncio.create_task(self._drain(), name=f"{self._name}-batcher")
        return await future

    async def idle(self) -> None:
        """Wait until nothing is pending (for shutdown)."""
        while self._round is not None:
            await asyncio.shield(self._round)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._run(batch)
        finally:
            self._round = None

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._handle([item for item, _ in batch])
        except Exception as exc:
            away = isinstance(exc, StorageError) and exc.retryable
            if len(batch) > 1 and not away:
                half = len(batch) // 2
                await self._run(batch[:half])
                await self._run(batch[half:])
                return
            if not away:
                log.warning("%s: an item was refused: %s", self._name, exc)
            else:  # the database is away: its callers say so, once per outage
                log.debug("%s round of %d failed: %s", self._name, len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away (its connection dropped)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
