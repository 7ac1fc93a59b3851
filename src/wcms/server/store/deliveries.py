"""The alert outbox: one row per message to one channel, claimed by one replica at a
time, and the log of every attempt to deliver it.

A delivery moves queued → sending (claimed, with a lease) → delivered or dead, or back
to queued for a retry. Every move is a conditional UPDATE: a claim only takes a row that
is still claimable, and a finish only writes while the row is still ``sending`` and held
by the one finishing it, so of two replicas racing for a row exactly one claims it, and
one whose lease was taken over writes nothing.

A channel's messages go out in the order they were queued (``created_at``, then id): a
row is claimable only while no older message of its channel waits for a retry or is
being sent. Test messages stand outside that order, and go even to a disabled channel.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.alerts import AlertMessage, DeliveryKind, DeliveryState
from wcms.server.store.records import columns, field_names, mapper, values
from wcms.server.store.tables import alert_channels, deliveries, delivery_attempts

# A message not delivered within this long after it was queued is given up (dead).
DEFAULT_DEADLINE_S = 24 * 3600.0

QUEUED = DeliveryState.QUEUED.value
SENDING = DeliveryState.SENDING.value
DELIVERED = DeliveryState.DELIVERED.value
DEAD = DeliveryState.DEAD.value
_TEST = DeliveryKind.TEST.value
EXPIRED_ERROR = "not delivered before its deadline"

Outcome = Literal["delivered", "retry", "rate_limited", "dead"]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: str
    channel_id: int
    channel: str  # the channel's name
    alert_id: int | None
    kind: str
    # Free-form: the AlertMessage, as JSON.
    message: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    deadline: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at sending a delivery, as its log keeps it."""

    at: datetime
    duration_ms: float
    status_code: int | None
    outcome: Outcome
    error: str | None


_delivery = mapper(DeliveryRecord)
_attempt = mapper(Attempt)
_COLUMNS = [
    alert_channels.c.name.label("channel") if name == "channel" else deliveries.c[name]
    for name in field_names(DeliveryRecord)
]
_JOINED = deliveries.join(alert_channels, alert_channels.c.id == deliveries.c.channel_id)


async def enqueue(
    conn: AsyncConnection,
    *,
    channel_id: int,
    message: AlertMessage,
    now: datetime,
    alert_id: int | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> str:
    """Queue ``message`` for ``channel_id`` in the caller's transaction; its delivery id."""
    delivery_id = str(uuid.uuid4())
    await conn.execute(
        insert(deliveries).values(
            id=delivery_id,
            channel_id=channel_id,
            alert_id=alert_id,
            kind=DeliveryKind(message.kind).value,
            message=message.model_dump(mode="json"),
            state=DeliveryState.QUEUED.value,
            attempts=0,
            next_attempt_at=now,
            deadline=now + timedelta(seconds=deadline_s),
            created_at=now,
        )
    )
    return delivery_id


# --- claiming ----------------------------------------------------------------------


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Queued and due, or sending under a lease that ran out (its replica died)."""
    return or_(
        and_(deliveries.c.state == QUEUED, deliveries.c.next_attempt_at <= now),
        and_(
            deliveries.c.state == SENDING,
            or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
        ),
    )


def _held_back(now: datetime) -> ColumnElement[bool]:
    """An older message of the same channel waits for its retry or is being sent."""
    older = deliveries.alias("older")
    return (
        select(older.c.id)
        .where(
            older.c.channel_id == deliveries.c.channel_id,
            older.c.kind != _TEST,
            or_(
                older.c.created_at < deliveries.c.created_at,
                and_(older.c.created_at == deliveries.c.created_at, older.c.id < deliveries.c.id),
            ),
            or_(
                and_(older.c.state == QUEUED, older.c.next_attempt_at > now),
                and_(older.c.state == SENDING, older.c.claimed_until >= now),
            ),
        )
        .correlate(deliveries)
        .exists()
    )


async def claimable(
    conn: AsyncConnection, *, now: datetime, limit: int, skip: Collection[int] = ()
) -> list[DeliveryRecord]:
    """Up to ``limit`` deliveries that may be sent now, oldest first: due, before their
    deadline, of an enabled channel (a test message of any), not held back by an older
    one of their channel, and not of a channel in ``skip``."""
    query = (
        select(*_COLUMNS)
        .select_from(_JOINED)
        .where(
            _claimable(now),
            deliveries.c.deadline > now,
            or_(alert_channels.c.enabled.is_(True), deliveries.c.kind == _TEST),
            or_(deliveries.c.kind == _TEST, ~_held_back(now)),
        )
        .order_by(deliveries.c.created_at, deliveries.c.id)
        .limit(limit)
    )
    if skip:
        query = query.where(deliveries.c.channel_id.not_in(list(skip)))
    return [_delivery(row) for row in await conn.execute(query)]


async def claim(
    conn: AsyncConnection,
    *,
    holder: str,
    now: datetime,
    lease_s: float,
    limit: int,
    skip: Collection[int] = (),
) -> list[DeliveryRecord]:
    """Claim up to ``limit`` deliveries for ``holder`` until ``now + lease_s``, oldest
    first, as :func:`claimable` finds them.

    1. Candidates are read first; each is then taken by its own conditional UPDATE
       (still claimable), so of two replicas racing for a row exactly one gets it: the
       other's UPDATE matches nothing (PostgreSQL re-checks the condition once the
       winner commits; SQLite runs one writer at a time).
    2. Once a row of a channel is lost to another replica, the channel's later rows are
       left to it too: each replica sends a channel's messages from its oldest on, so
       two of them never send one channel's messages at once, out of order.
    """
    until = now + timedelta(seconds=lease_s)
    claimed: list[DeliveryRecord] = []
    lost: set[int] = set()
    for candidate in await claimable(conn, now=now, limit=limit, skip=skip):
        if candidate.channel_id in lost:
            continue
        result = await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == candidate.id, _claimable(now))
            .values(state=SENDING, claimed_by=holder, claimed_until=until)
            .returning(deliveries.c.id)
        )
        if result.first() is None:
            lost.add(candidate.channel_id)
            continue
        claimed.append(replace(candidate, state=SENDING, claimed_by=holder, claimed_until=until))
    return claimed


def _held_by(holder: str, ids: Sequence[str]) -> ColumnElement[bool]:
    return and_(
        deliveries.c.id.in_(list(ids)),
        deliveries.c.state == SENDING,
        deliveries.c.claimed_by == holder,
    )


async def renew(
    conn: AsyncConnection, ids: Sequence[str], *, holder: str, until: datetime
) -> set[str]:
    """Extend ``holder``'s lease on these deliveries; the ids it still held."""
    if not ids:
        return set()
    result = await conn.execute(
        update(deliveries)
        .where(_held_by(holder, ids))
        .values(claimed_until=until)
        .returning(deliveries.c.id)
    )
    return {str(delivery_id) for delivery_id in result.scalars()}


async def release(conn: AsyncConnection, ids: Sequence[str], *, holder: str) -> int:
    """Put deliveries ``holder`` claimed but did not try back in the queue, as they were."""
    if not ids:
        return 0
    result = await conn.execute(
        update(deliveries)
        .where(_held_by(holder, ids))
        .values(state=QUEUED, claimed_by=None, claimed_until=None)
        .returning(deliveries.c.id)
    )
    return len(result.all())


# --- finishing ---------------------------------------------------------------------


async def delivered(
    conn: AsyncConnection, delivery_id: str, *, holder: str, attempt: Attempt
) -> bool:
    """The receiver accepted it; False (and nothing written) when ``holder`` no longer
    holds it."""
    return await _finish(
        conn,
        delivery_id,
        holder=holder,
        attempt=attempt,
        state=DELIVERED,
        delivered_at=attempt.at,
        claimed_until=None,
        last_error=None,
    )


async def retry(
    conn: AsyncConnection, delivery_id: str, *, holder: str, at: datetime, attempt: Attempt
) -> bool:
    """Back to the queue, to be tried again at ``at``; False when ``holder`` no longer
    holds it."""
    return await _finish(
        conn,
        delivery_id,
        holder=holder,
        attempt=attempt,
        state=QUEUED,
        next_attempt_at=at,
        claimed_by=None,
        claimed_until=None,
        last_error=attempt.error,
    )


async def dead(conn: AsyncConnection, delivery_id: str, *, holder: str, attempt: Attempt) -> bool:
    """Given up: a permanent error, or its deadline passed; False when ``holder`` no
    longer holds it."""
    return await _finish(
        conn,
        delivery_id,
        holder=holder,
        attempt=attempt,
        state=DEAD,
        claimed_until=None,
        last_error=attempt.error,
    )


async def _finish(
    conn: AsyncConnection, delivery_id: str, *, holder: str, attempt: Attempt, **changes: Any
) -> bool:
    result = await conn.execute(
        update(deliveries)
        .where(_held_by(holder, [delivery_id]))
        .values(attempts=deliveries.c.attempts + 1, last_status=attempt.status_code, **changes)
        .returning(deliveries.c.id)
    )
    if result.first() is None:
        return False
    await conn.execute(insert(delivery_attempts).values(delivery_id=delivery_id, **values(attempt)))
    return True


async def expire(conn: AsyncConnection, *, now: datetime) -> list[str]:
    """Give up every delivery whose deadline has passed and that nobody is sending (a
    disabled channel's, one whose next retry came too late); their ids."""
    result = await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.deadline <= now,
            or_(
                deliveries.c.state == QUEUED,
                and_(
                    deliveries.c.state == SENDING,
                    or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
                ),
            ),
        )
        .values(state=DEAD, claimed_until=None, last_error=EXPIRED_ERROR)
        .returning(deliveries.c.id)
    )
    ids = [str(delivery_id) for delivery_id in result.scalars()]
    if ids:
        given_up = Attempt(at=now, duration_ms=0.0, status_code=None, outcome="dead", error=None)
        rows = [{"delivery_id": i, **values(given_up), "error": EXPIRED_ERROR} for i in ids]
        await conn.execute(insert(delivery_attempts), rows)
    return ids


async def requeue(conn: AsyncConnection, delivery: DeliveryRecord, *, now: datetime) -> bool:
    """Queue a dead delivery again, due now, with as long before its new deadline as it
    had at first; False when it is not dead (any more)."""
    deadline = now + (delivery.deadline - delivery.created_at)
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery.id, deliveries.c.state == DEAD)
        .values(
            state=QUEUED,
            next_attempt_at=now,
            deadline=deadline,
            claimed_by=None,
            claimed_until=None,
        )
        .returning(deliveries.c.id)
    )
    return result.first() is not None


# --- reading -----------------------------------------------------------------------


async def recent(
    conn: AsyncConnection,
    *,
    state: str | None = None,
    channel_id: int | None = None,
    alert_id: int | None = None,
    limit: int = 100,
    before: datetime | None = None,
) -> list[DeliveryRecord]:
    """The newest deliveries first (queued before ``before`` when given), of one state,
    one channel and one alert when given."""
    query = (
        select(*_COLUMNS)
        .select_from(_JOINED)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
        .limit(limit)
    )
    if state is not None:
        query = query.where(deliveries.c.state == state)
    if channel_id is not None:
        query = query.where(deliveries.c.channel_id == channel_id)
    if alert_id is not None:
        query = query.where(deliveries.c.alert_id == alert_id)
    if before is not None:
        query = query.where(deliveries.c.created_at < before)
    return [_delivery(row) for row in await conn.execute(query)]


async def get(conn: AsyncConnection, delivery_id: str) -> DeliveryRecord | None:
    query = select(*_COLUMNS).select_from(_JOINED).where(deliveries.c.id == delivery_id)
    row = (await conn.execute(query)).first()
    return _delivery(row) if row is not None else None


async def attempts(conn: AsyncConnection, delivery_id: str) -> list[Attempt]:
    """Every attempt at the delivery, oldest first."""
    query = (
        select(*columns(delivery_attempts, Attempt))
        .where(delivery_attempts.c.delivery_id == delivery_id)
        .order_by(delivery_attempts.c.id)
    )
    return [_attempt(row) for row in await conn.execute(query)]


async def depth(conn: AsyncConnection) -> int:
    """How many deliveries are queued or being sent."""
    query = select(func.count()).where(deliveries.c.state.in_((QUEUED, SENDING)))
    return int((await conn.execute(query)).scalar_one())
