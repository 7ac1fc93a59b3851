"""What the alert engine keeps: each rule's state per subject, the alerts (incidents)
they make up, and the named leases that let one server replica evaluate at a time.

Only the replica holding the ``alert-engine`` lease writes subjects and alerts; the API
reads them and sets an alert's acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import alert_rules, alert_subjects, alerts, leases


@dataclass(frozen=True, slots=True)
class SubjectRecord:
    """One rule's state for one subject (a machine id, MACHINE/PROGRAM or
    MACHINE/run:ID): ``ok``, ``pending`` (bad for less than the rule's "for") or
    ``firing``."""

    id: int
    rule_id: int
    subject: str
    group_key: str
    state: str
    since: datetime
    alert_id: int | None
    summary: str
    # When it went to firing lately (ISO 8601), to tell flapping.
    flips: list[str]
    flapping: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewSubject:
    rule_id: int
    subject: str
    group_key: str
    state: str
    since: datetime
    alert_id: int | None
    summary: str
    flips: list[str]
    flapping: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    rule_id: int
    group_key: str
    state: str  # pending | firing | resolved
    subjects: list[str]
    summary: str
    started_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None
    next_notify_at: datetime | None
    last_notified_at: datetime | None
    # Free-form: {"firing": [subjects the last message named as firing]}.
    notified: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NewAlert:
    rule_id: int
    group_key: str
    state: str
    subjects: list[str]
    summary: str
    started_at: datetime
    next_notify_at: datetime | None


_subject = mapper(SubjectRecord)
_alert = mapper(AlertRecord)

# Alerts the engine still works on: open, or resolved with their last message to send.
_LIVE = or_(alerts.c.state != "resolved", alerts.c.next_notify_at.is_not(None))


# --- subjects ------------------------------------------------------------------------


async def subjects(conn: AsyncConnection) -> list[SubjectRecord]:
    """Every rule's subjects the engine keeps (in trouble, or with recent flips)."""
    query = select(*columns(alert_subjects, SubjectRecord)).order_by(alert_subjects.c.id)
    return [_subject(row) for row in await conn.execute(query)]


async def subjects_of(conn: AsyncConnection, alert_ids: list[int]) -> list[SubjectRecord]:
    if not alert_ids:
        return []
    query = select(*columns(alert_subjects, SubjectRecord)).where(
        alert_subjects.c.alert_id.in_(alert_ids)
    )
    return [_subject(row) for row in await conn.execute(query)]


async def insert_subjects(conn: AsyncConnection, new: list[NewSubject]) -> None:
    if new:
        await conn.execute(insert(alert_subjects), [values(subject) for subject in new])


async def update_subjects(conn: AsyncConnection, changed: list[tuple[int, NewSubject]]) -> None:
    """Store each subject (by id) as it now is."""
    skip = ("rule_id", "subject")
    for subject_id, subject in changed:
        await conn.execute(
            update(alert_subjects)
            .where(alert_subjects.c.id == subject_id)
            .values(**values(subject, skip=skip))
        )


async def delete_subjects(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(delete(alert_subjects).where(alert_subjects.c.id.in_(ids)))


# --- alerts --------------------------------------------------------------------------


async def live_alerts(conn: AsyncConnection) -> list[AlertRecord]:
    query = select(*columns(alerts, AlertRecord)).where(_LIVE).order_by(alerts.c.id)
    return [_alert(row) for row in await conn.execute(query)]


async def insert_alert(conn: AsyncConnection, new: NewAlert) -> int:
    result = await conn.execute(insert(alerts).values(**values(new)).returning(alerts.c.id))
    return int(result.scalar_one())


async def update_alerts(conn: AsyncConnection, changed: list[AlertRecord]) -> None:
    # The acknowledgement is the API's to set: never written back from the engine's copy.
    skip = ("id", "rule_id", "group_key", "started_at", "acked_at", "acked_by")
    for alert in changed:
        await conn.execute(
            update(alerts).where(alerts.c.id == alert.id).values(**values(alert, skip=skip))
        )


async def delete_alerts(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(delete(alerts).where(alerts.c.id.in_(ids)))


async def list_alerts(
    conn: AsyncConnection,
    *,
    states: tuple[str, ...] | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AlertRecord]:
    """Alerts newest first, with the names of their rules."""
    query = select(*columns(alerts, AlertRecord)).order_by(alerts.c.id.desc()).limit(limit)
    if states is not None:
        query = query.where(alerts.c.state.in_(states))
    if before_id is not None:
        query = query.where(alerts.c.id < before_id)
    return [_alert(row) for row in await conn.execute(query)]


async def get_alert(conn: AsyncConnection, alert_id: int) -> AlertRecord | None:
    result = await conn.execute(
        select(*columns(alerts, AlertRecord)).where(alerts.c.id == alert_id)
    )
    row = result.first()
    return _alert(row) if row is not None else None


async def acknowledge(conn: AsyncConnection, alert_id: int, *, by: str, at: datetime) -> bool:
    """Mark an alert acknowledged (kept if it already was); False if there is none."""
    result = await conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id)
        .values(
            acked_at=func.coalesce(alerts.c.acked_at, at),
            acked_by=func.coalesce(alerts.c.acked_by, by),
        )
    )
    return result.rowcount > 0


async def count_firing(conn: AsyncConnection) -> int:
    result = await conn.execute(
        select(func.count()).select_from(alerts).where(alerts.c.state == "firing")
    )
    return int(result.scalar_one())


async def count_unacknowledged(conn: AsyncConnection) -> int:
    """Firing alerts nobody has acknowledged."""
    result = await conn.execute(
        select(func.count())
        .select_from(alerts)
        .where(alerts.c.state == "firing", alerts.c.acked_at.is_(None))
    )
    return int(result.scalar_one())


async def rule_names(conn: AsyncConnection) -> dict[int, tuple[str, str, str]]:
    """Each rule's name, kind and severity, by id."""
    result = await conn.execute(
        select(alert_rules.c.id, alert_rules.c.name, alert_rules.c.kind, alert_rules.c.severity)
    )
    return {rule_id: (name, kind, severity) for rule_id, name, kind, severity in result}


# --- leases --------------------------------------------------------------------------


async def hold_lease(
    conn: AsyncConnection, name: str, *, holder: str, now: datetime, ttl_s: float
) -> bool:
    """Take or renew the lease ``name`` for ``holder`` until ``now + ttl_s``: True if
    ``holder`` has it now. One conditional update (held by us, or run out), else an
    insert that only the first of several replicas wins."""
    until = now + timedelta(seconds=ttl_s)
    result = await conn.execute(
        update(leases)
        .where(
            and_(
                leases.c.name == name,
                or_(leases.c.holder == holder, leases.c.expires_at <= now),
            )
        )
        .values(holder=holder, expires_at=until)
    )
    if result.rowcount > 0:
        return True
    exists = await conn.execute(select(leases.c.name).where(leases.c.name == name))
    if exists.first() is not None:
        return False
    try:
        async with conn.begin_nested():
            await conn.execute(insert(leases).values(name=name, holder=holder, expires_at=until))
    except IntegrityError:
        return False  # another replica inserted it first
    return True


async def release_lease(conn: AsyncConnection, name: str, *, holder: str) -> None:
    await conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))
