"""What alerting is told to do: channels, rules (and the channels each tells), silences
and maintenance windows.

A channel's URL and secret are stored sealed (``{"url": ...}`` and ``{"secret": ...}``,
see :class:`wcms.server.crypto.Sealer`), beside the URL as shown, its secret parts as
``***``. Names are unique: an insert or update that takes one already used raises
IntegrityError, which the service turns into a conflict.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper, values
from wcms.server.store.tables import (
    alert_channels,
    alert_rule_channels,
    alert_rules,
    alert_silences,
    maintenance_windows,
)


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    id: int
    name: str
    kind: str
    sealed_url: str
    shown_url: str
    sealed_secret: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class RuleRecord:
    id: int
    name: str
    kind: str
    selector: str
    for_s: float
    severity: str
    # The kind's own settings: "metric", "above", "include_shutdown".
    params: dict[str, Any]
    group_wait_s: float
    group_interval_s: float
    repeat_s: float
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    channel_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    id: int
    selector: str
    rule_id: int | None
    comment: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class WindowRecord:
    id: int
    name: str
    selector: str
    days: list[str] | None
    start_time: str | None
    end_time: str | None
    timezone: str
    starts_at: datetime | None
    ends_at: datetime | None
    report_left_on: bool
    channels: list[int]
    last_report_at: datetime | None
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class NewChannel:
    name: str
    kind: str
    sealed_url: str
    shown_url: str
    sealed_secret: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class NewRule:
    name: str
    kind: str
    selector: str
    for_s: float
    severity: str
    # Free-form: as RuleRecord.params.
    params: dict[str, Any]
    group_wait_s: float
    group_interval_s: float
    repeat_s: float
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class NewSilence:
    selector: str
    rule_id: int | None
    comment: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class NewWindow:
    name: str
    selector: str
    days: list[str] | None
    start_time: str | None
    end_time: str | None
    timezone: str
    starts_at: datetime | None
    ends_at: datetime | None
    report_left_on: bool
    channels: list[int]
    created_at: datetime
    created_by: str | None


_channel = mapper(ChannelRecord)
_rule = mapper(RuleRecord, omit=("channel_ids",))
_silence = mapper(SilenceRecord)
_window = mapper(WindowRecord)


async def channels(conn: AsyncConnection) -> list[ChannelRecord]:
    query = select(*columns(alert_channels, ChannelRecord)).order_by(alert_channels.c.name)
    return [_channel(row) for row in await conn.execute(query)]


async def rules(conn: AsyncConnection, *, enabled_only: bool = False) -> list[RuleRecord]:
    """Every rule with the ids of the channels it tells, by name."""
    query = select(*columns(alert_rules, RuleRecord, omit=("channel_ids",))).order_by(
        alert_rules.c.name
    )
    if enabled_only:
        query = query.where(alert_rules.c.enabled.is_(True))
    found = [_rule(row) for row in await conn.execute(query)]
    links: defaultdict[int, list[int]] = defaultdict(list)
    for rule_id, channel_id in await conn.execute(
        select(alert_rule_channels.c.rule_id, alert_rule_channels.c.channel_id)
    ):
        links[rule_id].append(channel_id)
    return [replace(rule, channel_ids=tuple(sorted(links[rule.id]))) for rule in found]


async def silences(
    conn: AsyncConnection, *, active_at: datetime | None = None
) -> list[SilenceRecord]:
    """Every silence, or those in force at ``active_at``."""
    query = select(*columns(alert_silences, SilenceRecord)).order_by(alert_silences.c.ends_at)
    if active_at is not None:
        query = query.where(
            alert_silences.c.starts_at <= active_at, alert_silences.c.ends_at > active_at
        )
    return [_silence(row) for row in await conn.execute(query)]


async def windows(conn: AsyncConnection) -> list[WindowRecord]:
    query = select(*columns(maintenance_windows, WindowRecord)).order_by(maintenance_windows.c.name)
    return [_window(row) for row in await conn.execute(query)]


# --- channels --------------------------------------------------------------------------


async def insert_channel(conn: AsyncConnection, channel: NewChannel) -> int:
    result = await conn.execute(
        insert(alert_channels).values(**values(channel)).returning(alert_channels.c.id)
    )
    return int(result.scalar_one())


async def channel_by_name(conn: AsyncConnection, name: str) -> ChannelRecord | None:
    result = await conn.execute(
        select(*columns(alert_channels, ChannelRecord)).where(alert_channels.c.name == name)
    )
    row = result.first()
    return _channel(row) if row is not None else None


async def channel_ids(conn: AsyncConnection, names: list[str]) -> dict[str, int]:
    """The ids of the channels of these names that exist, by name."""
    if not names:
        return {}
    result = await conn.execute(
        select(alert_channels.c.name, alert_channels.c.id).where(alert_channels.c.name.in_(names))
    )
    return {str(name): int(channel_id) for name, channel_id in result}


async def update_channel(conn: AsyncConnection, channel: ChannelRecord) -> None:
    """Store ``channel``'s URL, secret and switch as they now are."""
    await conn.execute(
        update(alert_channels)
        .where(alert_channels.c.id == channel.id)
        .values(**values(channel, skip=("id", "name", "kind", "created_at", "created_by")))
    )


async def delete_channel(conn: AsyncConnection, channel_id: int) -> bool:
    """Remove a channel (and its deliveries); IntegrityError while a rule tells it."""
    result = await conn.execute(
        delete(alert_channels)
        .where(alert_channels.c.id == channel_id)
        .returning(alert_channels.c.id)
    )
    return result.first() is not None


async def rules_telling(conn: AsyncConnection, channel_id: int) -> list[str]:
    """The names of the rules that tell this channel."""
    result = await conn.execute(
        select(alert_rules.c.name)
        .join(alert_rule_channels, alert_rule_channels.c.rule_id == alert_rules.c.id)
        .where(alert_rule_channels.c.channel_id == channel_id)
        .order_by(alert_rules.c.name)
    )
    return [str(name) for name in result.scalars()]


# --- rules -----------------------------------------------------------------------------


async def insert_rule(conn: AsyncConnection, rule: NewRule, channel_ids: list[int]) -> int:
    """Insert a rule with the channels it tells."""
    result = await conn.execute(
        insert(alert_rules).values(**values(rule)).returning(alert_rules.c.id)
    )
    rule_id = int(result.scalar_one())
    await _link(conn, rule_id, channel_ids)
    return rule_id


async def rule_by_name(conn: AsyncConnection, name: str) -> RuleRecord | None:
    query = select(*columns(alert_rules, RuleRecord, omit=("channel_ids",))).where(
        alert_rules.c.name == name
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    rule = _rule(row)
    linked = await conn.execute(
        select(alert_rule_channels.c.channel_id).where(alert_rule_channels.c.rule_id == rule.id)
    )
    return replace(rule, channel_ids=tuple(sorted(int(i) for i in linked.scalars())))


async def update_rule(conn: AsyncConnection, rule: RuleRecord) -> None:
    """Store ``rule`` as it now is, the channels it tells included."""
    skip = ("id", "name", "kind", "created_at", "created_by", "channel_ids")
    await conn.execute(
        update(alert_rules).where(alert_rules.c.id == rule.id).values(**values(rule, skip=skip))
    )
    await conn.execute(delete(alert_rule_channels).where(alert_rule_channels.c.rule_id == rule.id))
    await _link(conn, rule.id, list(rule.channel_ids))


async def delete_rule(conn: AsyncConnection, rule_id: int) -> bool:
    """Remove a rule, its channel links, silences and alerts."""
    await conn.execute(delete(alert_rule_channels).where(alert_rule_channels.c.rule_id == rule_id))
    result = await conn.execute(
        delete(alert_rules).where(alert_rules.c.id == rule_id).returning(alert_rules.c.id)
    )
    return result.first() is not None


async def _link(conn: AsyncConnection, rule_id: int, channel_ids: list[int]) -> None:
    if channel_ids:
        rows = [{"rule_id": rule_id, "channel_id": channel_id} for channel_id in channel_ids]
        await conn.execute(insert(alert_rule_channels), rows)


# --- silences --------------------------------------------------------------------------


async def insert_silence(conn: AsyncConnection, silence: NewSilence) -> int:
    result = await conn.execute(
        insert(alert_silences).values(**values(silence)).returning(alert_silences.c.id)
    )
    return int(result.scalar_one())


async def silence_by_id(conn: AsyncConnection, silence_id: int) -> SilenceRecord | None:
    result = await conn.execute(
        select(*columns(alert_silences, SilenceRecord)).where(alert_silences.c.id == silence_id)
    )
    row = result.first()
    return _silence(row) if row is not None else None


async def recent_silences(conn: AsyncConnection, *, limit: int) -> list[SilenceRecord]:
    """The ``limit`` silences that end (or ended) last, ended ones included; newest first."""
    query = (
        select(*columns(alert_silences, SilenceRecord))
        .order_by(alert_silences.c.ends_at.desc(), alert_silences.c.id.desc())
        .limit(limit)
    )
    return [_silence(row) for row in await conn.execute(query)]


async def end_silence(conn: AsyncConnection, silence_id: int, at: datetime) -> bool:
    """End a silence at ``at``, keeping its row; False when it had ended already."""
    result = await conn.execute(
        update(alert_silences)
        .where(alert_silences.c.id == silence_id, alert_silences.c.ends_at > at)
        .values(ends_at=at)
        .returning(alert_silences.c.id)
    )
    return result.first() is not None


# --- maintenance windows ---------------------------------------------------------------


async def insert_window(conn: AsyncConnection, window: NewWindow) -> int:
    result = await conn.execute(
        insert(maintenance_windows).values(**values(window)).returning(maintenance_windows.c.id)
    )
    return int(result.scalar_one())


async def window_by_name(conn: AsyncConnection, name: str) -> WindowRecord | None:
    result = await conn.execute(
        select(*columns(maintenance_windows, WindowRecord)).where(
            maintenance_windows.c.name == name
        )
    )
    row = result.first()
    return _window(row) if row is not None else None


async def delete_window(conn: AsyncConnection, window_id: int) -> bool:
    result = await conn.execute(
        delete(maintenance_windows)
        .where(maintenance_windows.c.id == window_id)
        .returning(maintenance_windows.c.id)
    )
    return result.first() is not None


async def mark_window_reported(conn: AsyncConnection, window_id: int, at: datetime) -> bool:
    """Note that the window's left-on report for the opening at ``at`` is made; False
    when it was already (one replica, one report per opening)."""
    column = maintenance_windows.c.last_report_at
    result = await conn.execute(
        update(maintenance_windows)
        .where(maintenance_windows.c.id == window_id, or_(column.is_(None), column < at))
        .values(last_report_at=at)
        .returning(maintenance_windows.c.id)
    )
    return result.first() is not None
