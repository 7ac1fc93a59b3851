"""Between the program supervisor and a channel: when to send the server a report of
the programs, and what to do with what the server sends back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from wcms.protocol.programs import ProgramReport, ProgramReportAck, ProgramSet

# A burst of changes (a crash, then backoff) goes out as one report.
REPORT_DELAY_S = 0.1


class Programs(Protocol):
    """What a channel needs of the supervisor."""

    @property
    def revision(self) -> int: ...

    def apply(self, programs: ProgramSet) -> None: ...

    def report(self) -> ProgramReport: ...

    def acknowledge(self, seq: int) -> None: ...


class ProgramFeed:
    """The supervisor's news for whichever channel is connected: a report at once after
    each change, and every ``interval`` while programs exist (their CPU, memory and
    players). Events stay in the supervisor until the server acknowledges them, so each
    report carries every event not yet stored and a new connection sends them again."""

    def __init__(self, build: Callable[[Callable[[], None]], Programs]) -> None:
        """``build`` makes the supervisor, given the callback for its changes."""
        self._changed = asyncio.Event()
        self.programs = build(self.notify)

    def notify(self) -> None:
        """The supervisor's ``on_change``: cheap, callable from any task."""
        self._changed.set()

    @property
    def revision(self) -> int:
        return self.programs.revision

    def received(self, programs: ProgramSet | None) -> None:
        """The server's set (sent when the agent's revision is not the server's)."""
        if programs is not None and programs.revision != self.programs.revision:
            self.programs.apply(programs)

    def acknowledged(self, ack: ProgramReportAck) -> None:
        self.programs.acknowledge(ack.seq)
        self.received(ack.programs)

    async def reports(
        self, send: Callable[[ProgramReport], Awaitable[None]], *, interval: float
    ) -> None:
        """Send a report now (the server learns the revision applied), then on each
        change and every ``interval`` while there is something to report."""
        while True:
            self._changed.clear()
            report = self.programs.report()
            await send(report)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval if report.statuses or report.events else None):
                    await self._changed.wait()
            await asyncio.sleep(REPORT_DELAY_S)
