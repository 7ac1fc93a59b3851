"""Channels, rules, silences and maintenance windows: created, changed and removed by
administrators, every change audited in its own transaction.

A channel's URL and secret are sealed at rest (:func:`opened_url`, :func:`opened_secret`
open them for its transport) and shown with ``***`` in place of their secret parts
(:func:`shown_url`); neither an answer, the audit log nor the log ever holds them.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.alerts import (
    OUTBOX_TOPIC,
    AlertMessage,
    ChannelCreate,
    ChannelKind,
    ChannelOut,
    ChannelPatch,
    ChannelTestOut,
    DeliveryKind,
    RuleCreate,
    RuleKind,
    RuleOut,
    RulePatch,
    Severity,
    SilenceCreate,
    SilenceOut,
    WindowCreate,
    WindowOut,
    check_channel_url,
    check_rule_params,
    check_timezone,
)
from wcms.server.bus import Bus
from wcms.server.crypto import Sealer
from wcms.server.errors import BadRequest, Conflict, NotFound
from wcms.server.services.alerts.windows import window_open
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import alert_config as store
from wcms.server.store import deliveries
from wcms.server.store.alert_config import (
    ChannelRecord,
    NewChannel,
    NewRule,
    NewSilence,
    NewWindow,
    RuleRecord,
    SilenceRecord,
    WindowRecord,
)
from wcms.server.store.engine import Database

MASK = "***"
# Path segments of a Discord or Slack webhook URL that are no secret: words ("api",
# "webhooks", "services"), numbers (Discord's webhook id) and Slack's ids (T…, B…).
_PLAIN_SEGMENT = re.compile(r"[a-z]{1,16}|\d{1,20}|[A-Z][A-Z0-9]{7,11}")
# Query parameters of an SMTP URL that are no secret.
_PLAIN_SMTP_PARAMS = ("to", "from")
_SHOWN_MAX = 2048
_RULE_FIELDS = ("selector", "for_s", "group_wait_s", "group_interval_s", "repeat_s", "enabled")


class AlertConfig:
    """What alerting is told to do, as administrators tell it."""

    def __init__(self, db: Database, sealer: Sealer, settings: Settings, *, bus: Bus) -> None:
        self.db = db
        self.sealer = sealer
        self.settings = settings
        self.bus = bus

    # --- channels ------------------------------------------------------------------

    async def create_channel(self, request: ChannelCreate, *, actor: Actor) -> ChannelOut:
        url = request.url.get_secret_value()
        secret = request.secret.get_secret_value() if request.secret else None
        now = utcnow()
        new = NewChannel(
            name=request.name,
            kind=request.kind.value,
            sealed_url=self.sealer.seal({"url": url}),
            shown_url=shown_url(request.kind, url),
            sealed_secret=self.sealer.seal({"secret": secret}) if secret else None,
            enabled=request.enabled,
            created_at=now,
            updated_at=now,
            created_by=actor.name,
        )
        try:
            async with self.db.begin() as conn:
                await store.insert_channel(conn, new)
                detail = {"kind": new.kind, "url": new.shown_url, "has_secret": bool(secret)}
                await record(conn, actor, "alert_channel.create", target=new.name, detail=detail)
        except IntegrityError as exc:
            raise _taken("alert channel", request.name) from exc
        return await self.get_channel(request.name)

    async def list_channels(self) -> list[ChannelOut]:
        async with self.db.connect() as conn:
            return [channel_out(channel) for channel in await store.channels(conn)]

    async def get_channel(self, name: str) -> ChannelOut:
        async with self.db.connect() as conn:
            return channel_out(await _channel(conn, name))

    async def update_channel(self, name: str, patch: ChannelPatch, *, actor: Actor) -> ChannelOut:
        """Change a channel: the fields the patch gives replace the stored ones (a null
        secret removes it)."""
        async with self.db.begin() as conn:
            channel = await _channel(conn, name)
            kind = ChannelKind(channel.kind)
            changed = replace(channel, updated_at=utcnow())
            if patch.url is not None:
                url = _checked_url(kind, patch.url.get_secret_value())
                sealed = self.sealer.seal({"url": url})
                changed = replace(changed, sealed_url=sealed, shown_url=shown_url(kind, url))
            if "secret" in patch.model_fields_set:
                secret = patch.secret.get_secret_value() if patch.secret is not None else None
                _check_secret(kind, secret)
                sealed_secret = self.sealer.seal({"secret": secret}) if secret is not None else None
                changed = replace(changed, sealed_secret=sealed_secret)
            if patch.enabled is not None:
                changed = replace(changed, enabled=patch.enabled)
            await store.update_channel(conn, changed)
            detail = {"fields": sorted(patch.model_fields_set), "url": changed.shown_url}
            await record(conn, actor, "alert_channel.update", target=name, detail=detail)
        return await self.get_channel(name)

    async def delete_channel(self, name: str, *, actor: Actor) -> None:
        """Remove a channel no rule or window tells; its deliveries go with it."""
        async with self.db.begin() as conn:
            channel = await _channel(conn, name)
            users = [f"rule {rule}" for rule in await store.rules_telling(conn, channel.id)]
            users += [
                f"window {window.name}"
                for window in await store.windows(conn)
                if channel.id in window.channels
            ]
            if users:
                raise Conflict(
                    f"channel {name!r} is still told by {', '.join(users)}: change or remove "
                    "them first",
                    code="channel_in_use",
                )
            await store.delete_channel(conn, channel.id)
            await record(conn, actor, "alert_channel.delete", target=name)

    async def test_channel(self, name: str, *, actor: Actor) -> ChannelTestOut:
        """Queue a test message to the channel (a disabled one too) and wake the outbox."""
        async with self.db.begin() as conn:
            channel = await _channel(conn, name)
            message = AlertMessage(
                kind=DeliveryKind.TEST,
                title="WCMS test message",
                summary=f"A test of the {channel.kind} channel {channel.name!r}, asked for by "
                f"{actor.name}: alerts sent to this channel reach you.",
                severity=Severity.INFO,
            )
            delivery = await deliveries.enqueue(
                conn, channel_id=channel.id, message=message, now=utcnow()
            )
            detail = {"delivery": delivery}
            await record(conn, actor, "alert_channel.test", target=name, detail=detail)
        self.bus.publish(OUTBOX_TOPIC, {})
        return ChannelTestOut(delivery=delivery)

    # --- rules ---------------------------------------------------------------------

    async def create_rule(self, request: RuleCreate, *, actor: Actor) -> RuleOut:
        now = utcnow()
        new = NewRule(
            name=request.name,
            kind=request.kind.value,
            selector=request.selector,
            for_s=request.for_s,
            severity=request.severity.value,
            params=_params(request.metric, request.above, request.include_shutdown),
            group_wait_s=request.group_wait_s,
            group_interval_s=request.group_interval_s,
            repeat_s=request.repeat_s,
            enabled=request.enabled,
            created_at=now,
            updated_at=now,
            created_by=actor.name,
        )
        try:
            async with self.db.begin() as conn:
                ids = await _channel_ids(conn, request.channels)
                await store.insert_rule(conn, new, ids)
                detail = {"kind": new.kind, "selector": new.selector, "channels": request.channels}
                await record(conn, actor, "alert_rule.create", target=new.name, detail=detail)
        except IntegrityError as exc:
            raise _taken("alert rule", request.name) from exc
        return await self.get_rule(request.name)

    async def list_rules(self) -> list[RuleOut]:
        async with self.db.connect() as conn:
            names = await _channel_names(conn)
            return [rule_out(rule, names) for rule in await store.rules(conn)]

    async def get_rule(self, name: str) -> RuleOut:
        async with self.db.connect() as conn:
            return rule_out(await _rule(conn, name), await _channel_names(conn))

    async def update_rule(self, name: str, patch: RulePatch, *, actor: Actor) -> RuleOut:
        """Change a rule: the fields the patch gives replace the stored ones (a null
        metric or threshold clears it); the result must still fit the rule's kind."""
        given = patch.model_fields_set
        async with self.db.begin() as conn:
            rule = await _rule(conn, name)
            changes = {
                field: getattr(patch, field)
                for field in _RULE_FIELDS
                if getattr(patch, field) is not None
            }
            if patch.severity is not None:
                changes["severity"] = patch.severity.value
            params = dict(rule.params)
            params.update({key: getattr(patch, key) for key in ("metric", "above") if key in given})
            if patch.include_shutdown is not None:
                params["include_shutdown"] = patch.include_shutdown
            params = _checked_params(RuleKind(rule.kind), params)
            ids = rule.channel_ids
            if patch.channels is not None:
                ids = tuple(await _channel_ids(conn, patch.channels))
            changed = replace(rule, **changes, params=params, channel_ids=ids, updated_at=utcnow())
            await store.update_rule(conn, changed)
            detail = {"fields": sorted(given)}
            await record(conn, actor, "alert_rule.update", target=name, detail=detail)
        return await self.get_rule(name)

    async def delete_rule(self, name: str, *, actor: Actor) -> None:
        """Remove a rule with its alerts and silences."""
        async with self.db.begin() as conn:
            rule = await _rule(conn, name)
            await store.delete_rule(conn, rule.id)
            await record(conn, actor, "alert_rule.delete", target=name)

    # --- silences ------------------------------------------------------------------

    async def create_silence(self, request: SilenceCreate, *, actor: Actor) -> SilenceOut:
        """Silence from now for ``duration_s``."""
        now = utcnow()
        async with self.db.begin() as conn:
            rule_id = (await _rule(conn, request.rule, field="rule")).id if request.rule else None
            new = NewSilence(
                selector=request.selector,
                rule_id=rule_id,
                comment=request.comment,
                starts_at=now,
                ends_at=now + timedelta(seconds=request.duration_s),
                created_at=now,
                created_by=actor.name,
            )
            silence_id = await store.insert_silence(conn, new)
            detail = {"selector": new.selector, "rule": request.rule, "ends_at": str(new.ends_at)}
            await record(conn, actor, "alert_silence.create", target=str(silence_id), detail=detail)
            rule_names = await _rule_names(conn)
            silence = await store.silence_by_id(conn, silence_id)
        assert silence is not None  # written in this transaction
        return silence_out(silence, rule_names)

    async def list_silences(self, *, active: bool = True, limit: int = 200) -> list[SilenceOut]:
        """The silences in force now (by when they end); with ``active`` false, the
        ``limit`` that end or ended last, ended ones included (newest first)."""
        async with self.db.connect() as conn:
            if active:
                found = await store.silences(conn, active_at=utcnow())
            else:
                found = await store.recent_silences(conn, limit=limit)
            rule_names = await _rule_names(conn)
        return [silence_out(silence, rule_names) for silence in found]

    async def end_silence(self, silence_id: int, *, actor: Actor) -> None:
        """End a silence now; its row stays, so the history shows it."""
        async with self.db.begin() as conn:
            if await store.silence_by_id(conn, silence_id) is None:
                raise NotFound(f"no silence {silence_id}")
            if await store.end_silence(conn, silence_id, utcnow()):
                await record(conn, actor, "alert_silence.delete", target=str(silence_id))

    # --- maintenance windows -------------------------------------------------------

    async def create_window(self, request: WindowCreate, *, actor: Actor) -> WindowOut:
        new = NewWindow(
            name=request.name,
            selector=request.selector,
            days=list(request.days) if request.days is not None else None,
            start_time=request.start,
            end_time=request.end,
            timezone=request.timezone or server_timezone(),
            starts_at=request.starts_at,
            ends_at=request.ends_at,
            report_left_on=request.report_left_on,
            channels=[],
            created_at=utcnow(),
            created_by=actor.name,
        )
        try:
            async with self.db.begin() as conn:
                new = replace(new, channels=await _channel_ids(conn, request.channels))
                await store.insert_window(conn, new)
                detail = {"selector": new.selector, "timezone": new.timezone}
                await record(
                    conn, actor, "maintenance_window.create", target=new.name, detail=detail
                )
        except IntegrityError as exc:
            raise _taken("maintenance window", request.name) from exc
        return await self.get_window(request.name)

    async def list_windows(self) -> list[WindowOut]:
        async with self.db.connect() as conn:
            names = await _channel_names(conn)
            return [window_out(window, names) for window in await store.windows(conn)]

    async def get_window(self, name: str) -> WindowOut:
        async with self.db.connect() as conn:
            return window_out(await _window(conn, name), await _channel_names(conn))

    async def delete_window(self, name: str, *, actor: Actor) -> None:
        async with self.db.begin() as conn:
            window = await _window(conn, name)
            await store.delete_window(conn, window.id)
            await record(conn, actor, "maintenance_window.delete", target=name)


# --- views -------------------------------------------------------------------------


def channel_out(channel: ChannelRecord) -> ChannelOut:
    return ChannelOut(
        id=channel.id,
        name=channel.name,
        kind=ChannelKind(channel.kind),
        url=channel.shown_url,
        has_secret=channel.sealed_secret is not None,
        enabled=channel.enabled,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
        created_by=channel.created_by,
    )


def rule_out(rule: RuleRecord, channel_names: dict[int, str]) -> RuleOut:
    return RuleOut(
        id=rule.id,
        name=rule.name,
        kind=RuleKind(rule.kind),
        selector=rule.selector,
        for_s=rule.for_s,
        severity=Severity(rule.severity),
        channels=[channel_names[i] for i in rule.channel_ids if i in channel_names],
        metric=rule.params.get("metric"),
        above=rule.params.get("above"),
        include_shutdown=bool(rule.params.get("include_shutdown")),
        group_wait_s=rule.group_wait_s,
        group_interval_s=rule.group_interval_s,
        repeat_s=rule.repeat_s,
        enabled=rule.enabled,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
        created_by=rule.created_by,
    )


def silence_out(silence: SilenceRecord, rule_names: dict[int, str]) -> SilenceOut:
    now = utcnow()
    return SilenceOut(
        id=silence.id,
        selector=silence.selector,
        rule=rule_names.get(silence.rule_id) if silence.rule_id is not None else None,
        comment=silence.comment,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        active=silence.starts_at <= now < silence.ends_at,
        created_by=silence.created_by,
    )


def window_out(window: WindowRecord, channel_names: dict[int, str]) -> WindowOut:
    return WindowOut.model_validate(
        {
            "id": window.id,
            "name": window.name,
            "selector": window.selector,
            "days": window.days,
            "start": window.start_time,
            "end": window.end_time,
            "timezone": window.timezone,
            "starts_at": window.starts_at,
            "ends_at": window.ends_at,
            "report_left_on": window.report_left_on,
            "channels": [channel_names[i] for i in window.channels if i in channel_names],
            "open_now": window_open(window, utcnow()),
            "created_at": window.created_at,
            "created_by": window.created_by,
        }
    )


# --- secrets -----------------------------------------------------------------------


def opened_url(sealer: Sealer, channel: ChannelRecord) -> str:
    """The channel's URL in clear, for its transport only."""
    return str(sealer.unseal(channel.sealed_url)["url"])


def opened_secret(sealer: Sealer, channel: ChannelRecord) -> str | None:
    """The webhook channel's HMAC key in clear, for its transport only."""
    if channel.sealed_secret is None:
        return None
    return str(sealer.unseal(channel.sealed_secret)["secret"])


def shown_url(kind: ChannelKind, url: str) -> str:
    """``url`` with its secret parts as ``***``: a password in it always; a Discord or
    Slack webhook's token (the path after its ids); query values, but an SMTP URL's
    recipients."""
    parts = urlsplit(url)
    path = (
        _shown_path(parts.path) if kind in (ChannelKind.DISCORD, ChannelKind.SLACK) else parts.path
    )
    plain = _PLAIN_SMTP_PARAMS if kind is ChannelKind.EMAIL else ()
    query = "&".join(_shown_param(param, plain) for param in parts.query.split("&") if param)
    fragment = MASK if parts.fragment else ""
    shown = urlunsplit((parts.scheme, _shown_netloc(parts.netloc), path, query, fragment))
    return shown[:_SHOWN_MAX]  # "a=b" shown as "a=***" is longer: the column holds 2048


def _shown_netloc(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _ = userinfo.partition(":")
    return f"{user}{':' + MASK if colon else ''}@{host}"


def _shown_path(path: str) -> str:
    # Everything from the first segment that may be a secret on is hidden; when none
    # looks like one, the last is hidden all the same: it is where the token goes.
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if segment and not _PLAIN_SEGMENT.fullmatch(segment):
            return "/".join([*segments[:index], MASK])
    filled = [index for index, segment in enumerate(segments) if segment]
    if not filled:
        return path
    return "/".join([*segments[: filled[-1]], MASK])


def _shown_param(param: str, plain: tuple[str, ...]) -> str:
    key, equals, value = param.partition("=")
    return param if not equals or not value or key in plain else f"{key}={MASK}"


def _checked_url(kind: ChannelKind, url: str) -> str:
    if len(url) > 2048:
        raise BadRequest("url: at most 2048 characters", field="url")
    try:
        return check_channel_url(kind, url)
    except ValueError as exc:
        raise BadRequest(f"url: {exc}", field="url") from None


def _check_secret(kind: ChannelKind, secret: str | None) -> None:
    if secret is None:
        return
    if kind is not ChannelKind.WEBHOOK:
        raise BadRequest("secret: only a webhook channel signs its messages", field="secret")
    if not 1 <= len(secret) <= 512:
        raise BadRequest("secret: from 1 to 512 characters", field="secret")


# --- lookups -----------------------------------------------------------------------


async def _channel(conn: AsyncConnection, name: str) -> ChannelRecord:
    channel = await store.channel_by_name(conn, name)
    if channel is None:
        raise NotFound(f"no alert channel {name!r}")
    return channel


async def _rule(conn: AsyncConnection, name: str, *, field: str | None = None) -> RuleRecord:
    rule = await store.rule_by_name(conn, name)
    if rule is None:
        code = "unknown_rule" if field else None
        raise NotFound(f"no alert rule {name!r}", field=field, code=code)
    return rule


async def _window(conn: AsyncConnection, name: str) -> WindowRecord:
    window = await store.window_by_name(conn, name)
    if window is None:
        raise NotFound(f"no maintenance window {name!r}")
    return window


async def _channel_ids(conn: AsyncConnection, names: list[str]) -> list[int]:
    """The ids of the channels named, in order, each once; NotFound naming the first
    that does not exist."""
    wanted = list(dict.fromkeys(names))
    found = await store.channel_ids(conn, wanted)
    for name in wanted:
        if name not in found:
            raise NotFound(
                f"no alert channel {name!r}: add it with `wcms channel add`",
                field="channels",
                code="unknown_channel",
            )
    return [found[name] for name in wanted]


async def _channel_names(conn: AsyncConnection) -> dict[int, str]:
    return {channel.id: channel.name for channel in await store.channels(conn)}


async def _rule_names(conn: AsyncConnection) -> dict[int, str]:
    return {rule.id: rule.name for rule in await store.rules(conn)}


def _params(metric: str | None, above: float | None, include_shutdown: bool) -> dict[str, Any]:
    # Free-form: the kind's own settings, as the alert_rules.params column holds them.
    return {"metric": metric, "above": above, "include_shutdown": include_shutdown}


def _checked_params(kind: RuleKind, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as stored, if they fit ``kind``; BadRequest naming the field."""
    checked = _params(
        params.get("metric"), params.get("above"), bool(params.get("include_shutdown"))
    )
    try:
        check_rule_params(kind, checked["metric"], checked["above"], checked["include_shutdown"])
    except ValueError as exc:
        message = str(exc)
        field, sep, _ = message.partition(": ")
        raise BadRequest(message, field=field if sep else None) from None
    return checked


def _taken(what: str, name: str) -> Conflict:
    article = "a" if what.startswith("m") else "an"
    return Conflict(f"there is already {article} {what} named {name!r}", field="name")


def server_timezone() -> str:
    """The server's time zone by name: ``TZ`` when it names one, else the zone
    ``/etc/localtime`` links to, else UTC."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    try:
        target = str(Path("/etc/localtime").readlink())
    except OSError:
        target = ""
    _, marker, zone = target.partition("zoneinfo/")
    if marker:
        candidates.append(re.sub(r"^(posix|right)/", "", zone))
    for candidate in candidates:
        if candidate:
            try:
                return check_timezone(candidate)
            except ValueError:
                continue
    return "UTC"
