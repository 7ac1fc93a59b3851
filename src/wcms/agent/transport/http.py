"""The HTTP long-poll channel, for networks whose proxies break WebSockets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from wcms.agent.errors import ServerError
from wcms.agent.transport import PROGRESS_INTERVAL_S, Channel, ChannelContext, first_to_end
from wcms.protocol import PROGRAMS_SINCE_VERSION, PROGRESS_SINCE_VERSION, RegisterRequest, RunUpdate
from wcms.protocol.programs import ProgramReport

log = logging.getLogger(__name__)

# When a poll brings back only runs the agent already has, wait this long before the
# next one rather than spin while the server catches up.
REPEAT_PAUSE_S = 2.0
# Answers to an update that retrying cannot change: the server will never take it.
_FINAL_REFUSALS = frozenset({400, 404, 409, 410, 422})


class LongPollChannel(Channel):
    """Heartbeats, polls and update uploads run concurrently over plain HTTP.

    ``until`` (a :func:`time.monotonic` time) ends the channel normally, so that a
    fallback from WebSocket tries the WebSocket again later.
    """

    name = "http"

    def __init__(self, ctx: ChannelContext, *, until: float | None = None) -> None:
        super().__init__(ctx)
        self._until = until

    async def serve(self, on_ready: Callable[[], None]) -> None:
        inventory = await asyncio.to_thread(self.ctx.inventory)
        hello = await self.ctx.client.hello(
            RegisterRequest(machine_id=self.ctx.machine_id, inventory=inventory)
        )
        interval = self.ctx.heartbeat_interval or hello.heartbeat_interval
        log.info("connected over HTTP long-poll as %s", hello.machine_id)
        on_ready()
        await first_to_end(
            self._heartbeats(interval),
            self._polls(hello.poll_timeout),
            self._flush(),
            self._progress(hello.protocol_version >= PROGRESS_SINCE_VERSION),
            self._program_reports(hello.protocol_version >= PROGRAMS_SINCE_VERSION, interval),
            self._deadline(),
        )

    async def say_goodbye(self, reason: str) -> None:
        for update in self.ctx.outbox.pending():
            await self._upload(update)
        await self.ctx.client.shutdown(reason)

    async def _heartbeats(self, interval: float) -> None:
        while True:
            status = await asyncio.to_thread(self.ctx.status.collect)
            await self.ctx.client.heartbeat(status)
            await asyncio.sleep(interval)

    async def _polls(self, wait: float) -> None:
        runner = self.ctx.runner
        while True:
            programs = self.ctx.programs
            poll = await self.ctx.client.poll(
                wait, programs_revision=programs.revision if programs else None
            )
            if programs is not None:
                programs.received(poll.programs)
            new = [runner.submit(envelope) for envelope in poll.runs]
            for run_id in poll.cancels:
                runner.cancel(run_id)
            if (poll.runs or poll.cancels) and not any(new):
                await asyncio.sleep(REPEAT_PAUSE_S)

    async def _flush(self) -> None:
        outbox = self.ctx.outbox
        while True:
            version = outbox.version
            for queued in outbox.queued():
                await self._upload(queued.update)
            await outbox.wait_for_change(version)

    async def _progress(self, supported: bool) -> None:
        """Send live progress, batched; to an older server, drop it. Best effort: a
        refused report is not sent again."""
        queue = self.ctx.progress
        while True:
            await queue.wait()
            for progress in queue.take():
                if not supported:
                    continue
                try:
                    await self.ctx.client.send_progress(progress)
                except ServerError as exc:
                    log.debug("run %s: progress refused: %s", progress.run_id, exc)
            await asyncio.sleep(PROGRESS_INTERVAL_S)

    async def _program_reports(self, supported: bool, interval: float) -> None:
        """Report the programs to a server that takes them (protocol 3); the answer
        acknowledges events and brings the server's set when it changed."""
        feed = self.ctx.programs
        if feed is None or not supported:
            await asyncio.Event().wait()
            return

        async def send(report: ProgramReport) -> None:
            feed.acknowledged(await self.ctx.client.report_programs(report))

        await feed.reports(send, interval=interval)

    async def _upload(self, update: RunUpdate) -> None:
        """Send one update; a 2xx answer means the server stored it."""
        try:
            await self.ctx.client.send_update(update)
        except ServerError as exc:
            if exc.status not in _FINAL_REFUSALS:
                raise
            log.warning(
                "run %s/%s: the server refused the %s update for good (%s); dropping it",
                update.run_id,
                update.attempt,
                update.state.value,
                exc,
            )
        self.ctx.outbox.ack(update.run_id, update.attempt, state=update.state)

    async def _deadline(self) -> None:
        if self._until is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(max(self._until - time.monotonic(), 0))
