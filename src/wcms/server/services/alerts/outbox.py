"""The outbox worker: claims queued deliveries and sends them through their channel's
transport, with retries, backoff and a dead letter; and the delivery log the API shows.

Sending happens here only, on this worker's own HTTP client: no request and no agent
connection ever waits for a webhook or a mail server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms import __version__
from wcms.protocol.alerts import (
    OUTBOX_TOPIC,
    AlertMessage,
    AttemptOut,
    DeliveryDetail,
    DeliveryKind,
    DeliveryOut,
    DeliveryState,
)
from wcms.server.bus import Bus
from wcms.server.bus.base import Subscription
from wcms.server.crypto import Sealer
from wcms.server.errors import Conflict, NotFound, StorageError
from wcms.server.services.alerts.config import opened_secret, opened_url
from wcms.server.services.alerts.transports import (
    Outgoing,
    Transport,
    TransportError,
    transport_for,
)
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import alert_config as config_store
from wcms.server.store import deliveries as store
from wcms.server.store.alert_config import ChannelRecord
from wcms.server.store.deliveries import Attempt, DeliveryRecord, Outcome
from wcms.server.store.engine import Database
from wcms.server.telemetry import Telemetry

log = logging.getLogger("wcms.alerts.outbox")

# Without a wake-up on the bus, the outbox looks for due messages this often.
POLL_S = 1.0
# Deliveries claimed in one round, over all channels.
BATCH = 100


def backoff(
    failures: int,
    *,
    base: float,
    cap: float,
    draw: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after the ``failures``-th failure: "full jitter", anywhere from
    0 to ``base`` doubled per failure, capped at ``cap``, so that many messages failing
    at once do not all come back at once."""
    ceiling = min(cap, base * 2.0 ** min(max(failures - 1, 0), 64))
    return draw(0.0, ceiling)


class Outbox:
    """Delivers queued alert messages, each to its channel.

    Every round (on an ``alert_outbox`` bus event, when a channel's sending is done,
    at a retry's time, else every second) it gives up deliveries past their deadline,
    claims what is due (``store.deliveries.claim``: one replica per row) and starts a
    lane per channel: a channel's messages go one at a time, oldest first, channels
    side by side. A transient failure schedules a retry with backoff; a rate limit
    waits as long as the receiver asked (this replica skips the channel meanwhile, the
    others see the retry time); a permanent error or the deadline makes it dead.
    A disabled channel's messages wait, but a test message goes.

    Delivery is at least once. :meth:`stop` cancels a send in flight; its delivery stays
    claimed until the lease runs out and is then sent again, by this replica after a
    restart or by another, so a receiver may get a message twice. The generic webhook's
    ``X-WCMS-Delivery`` header (and a mail's Message-ID) is the same on every attempt,
    which lets the receiver drop the copy.
    """

    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        settings: Settings,
        *,
        bus: Bus,
        telemetry: Telemetry,
        holder: str,
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.settings = settings
        self.bus = bus
        self.telemetry = telemetry
        self.holder = holder
        # Deliveries queued or being sent, as of the last round (for /metrics).
        self.depth = 0
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._subscription: Subscription | None = None
        self._transports: dict[str, Transport] = {}
        self._lanes: dict[int, asyncio.Task[None]] = {}
        # Channels told to wait by a rate limit: until when (event loop time).
        self._paused: dict[int, float] = {}
        # The earliest retry this replica scheduled (event loop time): the next round.
        self._due: float | None = None
        self._kick = asyncio.Event()
        self._failing = False

    # --- the worker ------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is not None:
            return
        self._client = httpx.AsyncClient(
            headers={"User-Agent": f"WCMS/{__version__}"},
            timeout=self.settings.alert_send_timeout,
            follow_redirects=False,
        )
        self._subscription = self.bus.subscribe([OUTBOX_TOPIC], maxsize=16)
        self._task = asyncio.create_task(self._run(), name="alert-outbox")

    async def stop(self) -> None:
        """End the loop and every lane now; what a lane had claimed but not begun goes
        back to the queue, a send in flight is left to its lease (see the class)."""
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._lanes.values()) if t is not None]
        for running in tasks:
            running.cancel()
        for running in tasks:
            with suppress(asyncio.CancelledError):
                await running
        self._lanes.clear()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._transports.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except StorageError:
                if not self._failing:  # said once per outage, not once a second
                    log.warning("the alert outbox cannot reach the database; retrying")
                self._failing = True
            except Exception:  # a round must never kill the worker; the next one retries
                log.exception("alert outbox round failed")
            else:
                if self._failing:
                    log.info("the alert outbox reaches the database again")
                self._failing = False
            await self._idle()

    async def _idle(self) -> None:
        """Wait for a bus event, a lane that is done, a retry's time or ``POLL_S``."""
        assert self._subscription is not None
        timeout = POLL_S
        if self._due is not None:
            timeout = max(0.0, min(timeout, self._due - asyncio.get_running_loop().time()))
        waiters = [
            asyncio.ensure_future(self._subscription.get(timeout)),
            asyncio.ensure_future(self._kick.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._subscription.drain()

    async def round(self) -> None:
        """One round: give up what is past its deadline, claim what is due (but for
        channels busy here or told to wait), and start a lane per channel."""
        self._kick.clear()
        now = utcnow()
        clock = asyncio.get_running_loop().time()
        self._paused = {channel: t for channel, t in self._paused.items() if t > clock}
        if self._due is not None and self._due <= clock:
            self._due = None
        async with self.db.begin() as conn:
            expired = await store.expire(conn, now=now)
            claimed = await store.claim(
                conn,
                holder=self.holder,
                now=now,
                lease_s=self.settings.alert_lease,
                limit=BATCH,
                skip={*self._lanes, *self._paused},
            )
            channels = {c.id: c for c in await config_store.channels(conn)} if claimed else {}
            self.depth = await store.depth(conn)
        self.telemetry.alert_outbox_depth.set(self.depth)
        for delivery_id in expired:
            self.telemetry.alert_deliveries.labels(outcome="dead").inc()
            fields = {"delivery": delivery_id, "outcome": "dead"}
            log.warning(
                "alert delivery %s: dead, %s", delivery_id, store.EXPIRED_ERROR, extra=fields
            )
        lanes: dict[int, list[DeliveryRecord]] = {}
        for delivery in claimed:
            lanes.setdefault(delivery.channel_id, []).append(delivery)
        for channel_id, batch in lanes.items():
            channel = channels.get(channel_id)
            if channel is None:  # removed since: its deliveries went with it
                continue
            lane = asyncio.create_task(self._lane(channel, batch), name="alert-outbox-lane")
            lane.add_done_callback(functools.partial(self._lane_done, channel_id))
            self._lanes[channel_id] = lane

    def _lane_done(self, channel_id: int, lane: asyncio.Task[None]) -> None:
        if self._lanes.get(channel_id) is lane:
            del self._lanes[channel_id]
        if not lane.cancelled() and lane.exception() is not None:
            log.error("alert outbox lane failed", exc_info=lane.exception())
        self._kick.set()

    # --- one channel -----------------------------------------------------------------

    async def _lane(self, channel: ChannelRecord, batch: list[DeliveryRecord]) -> None:
        """Send one channel's claimed deliveries one after the other, oldest first.

        1. Before each, make sure the lease still holds (renewed when it runs short): a
           delivery another replica took over is its to send.
        2. Once one must wait (a retry, a rate limit), stop: the rest go back to the
           queue untried, so that none overtakes it.
        """
        held_until = min(delivery.claimed_until or utcnow() for delivery in batch)
        waiting = [delivery.id for delivery in batch]
        try:
            for delivery in batch:
                held_until = await self._hold(waiting, held_until)
                if delivery.id not in waiting:
                    return
                waiting.remove(delivery.id)  # in flight: from now on, left to the lease
                if not await self._attempt(channel, delivery):
                    return
        finally:
            if waiting:
                await self._release(waiting)

    async def _hold(self, waiting: list[str], held_until: datetime) -> datetime:
        """Renew the lease on ``waiting`` when it has less than two attempts' time left;
        drop from ``waiting`` what this replica no longer holds."""
        now = utcnow()
        margin = timedelta(seconds=2 * self.settings.alert_send_timeout)
        if held_until - now > margin:
            return held_until
        until = now + timedelta(seconds=self.settings.alert_lease)
        async with self.db.begin() as conn:
            kept = await store.renew(conn, waiting, holder=self.holder, until=until)
        for delivery_id in [d for d in waiting if d not in kept]:
            log.warning("alert delivery %s: its lease went to another replica", delivery_id)
            waiting.remove(delivery_id)
        return until

    async def _release(self, ids: list[str]) -> None:
        try:
            async with self.db.begin() as conn:
                await store.release(conn, ids, holder=self.holder)
        except StorageError:
            log.warning("%d alert deliveries wait for their lease to run out", len(ids))

    async def _attempt(self, channel: ChannelRecord, delivery: DeliveryRecord) -> bool:
        """Try ``delivery`` once and record how it went; True when the channel's next
        message may go now (this one is delivered or dead)."""
        now = utcnow()
        if now >= delivery.deadline:
            expired = TransportError(store.EXPIRED_ERROR, permanent=True)
            return await self._record(channel, delivery, expired, at=now, duration_ms=0.0)
        started = time.monotonic()
        failure: TransportError | None = None
        try:
            await self._transport(channel).notify(self._outgoing(channel, delivery))
        except TransportError as exc:
            failure = exc
        except Exception as exc:  # a transport's bug costs this attempt, not the worker
            log.exception("the %s transport failed", channel.kind)
            failure = TransportError(f"{type(exc).__name__} in the transport", permanent=False)
        duration_ms = (time.monotonic() - started) * 1000
        return await self._record(channel, delivery, failure, at=now, duration_ms=duration_ms)

    def _transport(self, channel: ChannelRecord) -> Transport:
        transport = self._transports.get(channel.kind)
        if transport is None:
            assert self._client is not None
            try:
                transport = transport_for(
                    channel.kind, self._client, timeout=self.settings.alert_send_timeout
                )
            except ValueError:
                raise TransportError(
                    f"no transport for channels of kind {channel.kind!r}", permanent=True
                ) from None
            self._transports[channel.kind] = transport
        return transport

    def _outgoing(self, channel: ChannelRecord, delivery: DeliveryRecord) -> Outgoing:
        try:
            message = AlertMessage.model_validate(delivery.message)
        except ValidationError:
            raise TransportError("the stored message is not valid", permanent=True) from None
        try:
            url, secret = opened_url(self.sealer, channel), opened_secret(self.sealer, channel)
        except (ValueError, KeyError):
            raise TransportError(
                "the channel's URL cannot be opened with this server's key", permanent=True
            ) from None
        return Outgoing(delivery.id, message, url, secret, delivery.attempts + 1)

    async def _record(
        self,
        channel: ChannelRecord,
        delivery: DeliveryRecord,
        failure: TransportError | None,
        *,
        at: datetime,
        duration_ms: float,
    ) -> bool:
        """Store the attempt's outcome: delivered, dead, or a retry at its time."""
        status = failure.status if failure is not None else None
        error = failure.message if failure is not None else None
        retry_at: datetime | None = None
        outcome: Outcome
        if failure is None:
            outcome = "delivered"
        elif failure.permanent:
            outcome = "dead"
        else:
            outcome = "rate_limited" if failure.retry_after is not None else "retry"
            wait = failure.retry_after
            if wait is None:
                base, cap = self.settings.alert_retry_base, self.settings.alert_retry_cap
                wait = backoff(delivery.attempts + 1, base=base, cap=cap)
            retry_at = utcnow() + timedelta(seconds=wait)
            if retry_at >= delivery.deadline:
                outcome, error = "dead", f"{error}; the deadline passes before another attempt"
            else:
                self._schedule(channel.id, wait, paused=failure.retry_after is not None)
        attempt = Attempt(at, duration_ms, status, outcome, error)
        async with self.db.begin() as conn:
            if outcome == "delivered":
                kept = await store.delivered(conn, delivery.id, holder=self.holder, attempt=attempt)
            elif outcome == "dead":
                kept = await store.dead(conn, delivery.id, holder=self.holder, attempt=attempt)
            else:
                assert retry_at is not None
                kept = await store.retry(
                    conn, delivery.id, holder=self.holder, at=retry_at, attempt=attempt
                )
        self.telemetry.alert_deliveries.labels(outcome=outcome).inc()
        _log_attempt(channel, delivery, attempt, kept=kept)
        return outcome in ("delivered", "dead")

    def _schedule(self, channel_id: int, wait: float, *, paused: bool) -> None:
        """Come back for a retry in ``wait`` s; a rate limit keeps the channel waiting."""
        # A little late rather than early: the row is due by the database's clock.
        when = asyncio.get_running_loop().time() + wait + 0.01
        self._due = when if self._due is None else min(self._due, when)
        if paused:
            self._paused[channel_id] = when

    # --- the delivery log ------------------------------------------------------------

    async def list_deliveries(
        self,
        *,
        state: DeliveryState | None = None,
        channel: str | None = None,
        alert_id: int | None = None,
        limit: int = 100,
        before: datetime | None = None,
    ) -> list[DeliveryOut]:
        """The newest deliveries first, of one state, one channel and one alert when
        given, queued
        before ``before`` (UTC when it names no offset) when given."""
        if before is not None and before.tzinfo is None:
            before = before.replace(tzinfo=UTC)
        async with self.db.connect() as conn:
            channel_id = None
            if channel is not None:
                found = await config_store.channel_by_name(conn, channel)
                if found is None:
                    raise NotFound(f"no alert channel named {channel!r}", field="channel")
                channel_id = found.id
            records = await store.recent(
                conn,
                state=state.value if state is not None else None,
                channel_id=channel_id,
                alert_id=alert_id,
                limit=limit,
                before=before,
            )
        return [delivery_out(delivery) for delivery in records]

    async def get_delivery(self, delivery_id: str) -> DeliveryDetail:
        """One delivery with its message and every attempt at it."""
        async with self.db.connect() as conn:
            delivery = await _delivery(conn, delivery_id)
            attempts = await store.attempts(conn, delivery.id)
        return DeliveryDetail(
            **delivery_out(delivery).model_dump(),
            message=AlertMessage.model_validate(delivery.message),
            attempt_log=[
                AttemptOut(
                    at=a.at,
                    duration_ms=a.duration_ms,
                    status_code=a.status_code,
                    outcome=a.outcome,
                    error=a.error,
                )
                for a in attempts
            ],
        )

    async def retry(self, delivery_id: str, *, actor: Actor) -> DeliveryOut:
        """Queue a dead delivery again, due now (Conflict unless it is dead)."""
        async with self.db.begin() as conn:
            delivery = await _delivery(conn, delivery_id)
            if not await store.requeue(conn, delivery, now=utcnow()):
                raise Conflict(
                    f"delivery {delivery_id} is {delivery.state}: only a dead one is retried",
                    code="delivery_not_dead",
                )
            detail = {"channel": delivery.channel, "kind": delivery.kind}
            await record(conn, actor, "alert_delivery.retry", target=delivery_id, detail=detail)
            retried = await _delivery(conn, delivery_id)
        self.bus.publish(OUTBOX_TOPIC, {})
        return delivery_out(retried)


async def _delivery(conn: AsyncConnection, delivery_id: str) -> DeliveryRecord:
    delivery = await store.get(conn, delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id}")
    return delivery


def delivery_out(delivery: DeliveryRecord) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        channel=delivery.channel,
        alert_id=delivery.alert_id,
        kind=DeliveryKind(delivery.kind),
        title=str(delivery.message.get("title", "")),
        state=DeliveryState(delivery.state),
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.state == store.QUEUED else None,
        deadline=delivery.deadline,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


def _log_attempt(
    channel: ChannelRecord, delivery: DeliveryRecord, attempt: Attempt, *, kept: bool
) -> None:
    """One line per attempt: which delivery, which channel, how it went; never the URL."""
    fields = {
        "delivery": delivery.id,
        "channel": channel.name,
        "status": attempt.status_code,
        "outcome": attempt.outcome,
    }
    if not kept:
        log.warning(
            "alert delivery %s to %s: %s, not recorded: its lease went to another replica",
            delivery.id,
            channel.name,
            attempt.outcome,
            extra=fields,
        )
        return
    level = logging.INFO if attempt.outcome == "delivered" else logging.WARNING
    log.log(
        level,
        "alert delivery %s to %s: %s (attempt %d, status %s)%s",
        delivery.id,
        channel.name,
        attempt.outcome,
        delivery.attempts + 1,
        attempt.status_code,
        f": {attempt.error}" if attempt.error else "",
        extra=fields,
    )
