"""What alerting is told to do: channels, rules (and the channels each tells), silences
and maintenance windows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store.records import columns, mapper
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
