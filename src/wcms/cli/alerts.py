"""`wcms channel`, `rule`, `alerts`, `alert`, `silence`, `window` and `deliveries`:
alerting over the admin API."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import BaseModel, TypeAdapter
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from wcms.cli.client import ApiClient, CliError
from wcms.cli.options import parse_duration
from wcms.protocol.alerts import (
    AlertOut,
    ChannelOut,
    ChannelTestOut,
    DeliveryOut,
    DeliveryState,
    RuleOut,
    SilenceOut,
    WindowOut,
)

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _app(help_text: str, **settings: Any) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, **settings)


class _SelectorFirst(TyperGroup):
    """A group whose first argument, when it is no command of the group, is the
    selector of its ``add``: ``wcms silence room:A101 --for 2h``."""

    # ``ctx`` is the Context of the click that typer bundles, which it does not export.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["add", *args]
        return super().parse_args(ctx, args)


channel_app = _app("Where alerts are sent: Discord, Slack, a webhook or email.")
rule_app = _app("What is watched, and which channels hear of it.")
alert_app = _app("One alert: acknowledge it.")
silence_app = _app(
    "Silence alerts: `wcms silence SELECTOR --for DURATION` (or `silence add`), "
    "`silence list`, `silence remove ID`.",
    cls=_SelectorFirst,
)
window_app = _app("Maintenance windows: machines going offline inside raise nothing.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]
NameArg = Annotated[str, typer.Argument(help="Its name")]
ChannelsOpt = Annotated[
    list[str] | None, typer.Option("--channel", help="A channel to tell (again for more)")
]
ALERT_STATES = ("firing", "pending", "resolved", "active")

_channels: TypeAdapter[list[ChannelOut]] = TypeAdapter(list[ChannelOut])
_rules: TypeAdapter[list[RuleOut]] = TypeAdapter(list[RuleOut])
_alerts: TypeAdapter[list[AlertOut]] = TypeAdapter(list[AlertOut])
_silences: TypeAdapter[list[SilenceOut]] = TypeAdapter(list[SilenceOut])
_windows: TypeAdapter[list[WindowOut]] = TypeAdapter(list[WindowOut])
_deliveries: TypeAdapter[list[DeliveryOut]] = TypeAdapter(list[DeliveryOut])


# --- channels ----------------------------------------------------------------------


@channel_app.command("add")
def channel_add(
    name: Annotated[str, typer.Argument(help="A name for it, e.g. lab-discord")],
    kind: Annotated[str, typer.Argument(help="discord, slack, webhook or email")],
    url: Annotated[
        str,
        typer.Argument(help="The webhook URL, or smtp://user:pass@host:port?to=a@b for email"),
    ],
    secret: Annotated[
        str | None, typer.Option("--secret", help="A webhook's HMAC-SHA256 signing key")
    ] = None,
) -> None:
    """Add a channel; its URL and secret are sealed on the server and never shown whole."""
    body: dict[str, Any] = {"name": name, "kind": kind, "url": url}
    if secret is not None:
        body["secret"] = secret
    out = ChannelOut.model_validate(_api().request("POST", "/api/alert-channels", body))
    console.print(f"added {out.kind.value} channel {out.name}: {out.url}")


@channel_app.command("list")
def channel_list(as_json: JsonFlag = False) -> None:
    """List channels, their URLs with the secret parts as ***."""
    channels = _channels.validate_python(_api().request("GET", "/api/alert-channels"))
    if _print_json(as_json, channels):
        return
    table = Table("NAME", "KIND", "URL", "SIGNED", "ENABLED")
    for c in channels:
        table.add_row(c.name, c.kind.value, c.url, _yes(c.has_secret), _yes(c.enabled))
    console.print(table)


@channel_app.command("test")
def channel_test(name: NameArg) -> None:
    """Send a test message through the channel (queued; a disabled channel too)."""
    raw = _api().request("POST", f"/api/alert-channels/{_part(name)}/test")
    out = ChannelTestOut.model_validate(raw)
    console.print(
        f"queued a test message to {name}; `wcms deliveries --channel {name}` tells how it went"
    )
    typer.echo(out.delivery)


@channel_app.command("remove")
def channel_remove(name: NameArg) -> None:
    """Remove a channel that no rule or window tells."""
    _api().request("DELETE", f"/api/alert-channels/{_part(name)}")
    console.print(f"removed channel {name}")


# --- rules -------------------------------------------------------------------------


@rule_app.command("add")
def rule_add(
    name: Annotated[str, typer.Argument(help="A name for it, e.g. lab-offline")],
    kind: Annotated[
        str,
        typer.Argument(
            help="machine_offline, program_down, command_failed, metric or agent_conflict"
        ),
    ],
    channels: ChannelsOpt = None,
    selector: Annotated[
        str, typer.Option("--selector", help="all, room:NAME, tag:NAME, machine ids; a,b")
    ] = "all",
    for_: Annotated[
        str | None, typer.Option("--for", help="How long it is bad before firing, e.g. 5m")
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="For metric: cpu, ram, disk or program_rss")
    ] = None,
    above: Annotated[
        float | None,
        typer.Option("--above", help="For metric: percent (cpu, ram, disk), MiB (program_rss)"),
    ] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", help="info, warning (default) or critical")
    ] = None,
    include_shutdown: Annotated[
        bool,
        typer.Option("--include-shutdown", help="machine_offline: a clean shutdown counts too"),
    ] = False,
    repeat: Annotated[
        str | None, typer.Option("--repeat", help="Tell a firing alert again after, e.g. 4h")
    ] = None,
    group_wait: Annotated[
        str | None, typer.Option("--group-wait", help="Wait to gather a group's first, e.g. 30s")
    ] = None,
    group_interval: Annotated[
        str | None, typer.Option("--group-interval", help="Between a group's messages, e.g. 5m")
    ] = None,
) -> None:
    """Add a rule; --channel at least once."""
    if not channels:
        raise CliError("name at least one channel with --channel NAME")
    body: dict[str, Any] = {"name": name, "kind": kind, "selector": selector, "channels": channels}
    durations = {
        "for_s": ("--for", for_),
        "repeat_s": ("--repeat", repeat),
        "group_wait_s": ("--group-wait", group_wait),
        "group_interval_s": ("--group-interval", group_interval),
    }
    body |= {key: _seconds(option, text) for key, (option, text) in durations.items() if text}
    given = {"metric": metric, "above": above, "severity": severity}
    body |= {key: value for key, value in given.items() if value is not None}
    if include_shutdown:
        body["include_shutdown"] = True
    out = RuleOut.model_validate(_api().request("POST", "/api/alert-rules", body))
    console.print(f"added rule {out.name}: {_condition(out)}, telling {', '.join(out.channels)}")


@rule_app.command("list")
def rule_list(as_json: JsonFlag = False) -> None:
    """List rules."""
    rules = _rules.validate_python(_api().request("GET", "/api/alert-rules"))
    if _print_json(as_json, rules):
        return
    table = Table("NAME", "KIND", "SELECTOR", "WHEN", "SEVERITY", "CHANNELS", "ENABLED")
    for r in rules:
        table.add_row(
            r.name,
            r.kind.value,
            r.selector,
            _condition(r),
            r.severity.value,
            ", ".join(r.channels),
            _yes(r.enabled),
        )
    console.print(table)


@rule_app.command("remove")
def rule_remove(name: NameArg) -> None:
    """Remove a rule with its alerts and silences."""
    _api().request("DELETE", f"/api/alert-rules/{_part(name)}")
    console.print(f"removed rule {name}")


@rule_app.command("enable")
def rule_enable(name: NameArg) -> None:
    """Turn a rule on."""
    _switch(name, enabled=True)


@rule_app.command("disable")
def rule_disable(name: NameArg) -> None:
    """Turn a rule off; its alerts resolve."""
    _switch(name, enabled=False)


def _switch(name: str, *, enabled: bool) -> None:
    path = f"/api/alert-rules/{_part(name)}"
    out = RuleOut.model_validate(_api().request("PATCH", path, {"enabled": enabled}))
    console.print(f"rule {out.name} {'enabled' if out.enabled else 'disabled'}")


# --- alerts ------------------------------------------------------------------------


def alerts(
    as_json: JsonFlag = False,
    state: Annotated[
        str | None, typer.Option("--state", help="firing, pending, resolved or active")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many")] = 100,
) -> None:
    """List alerts, newest first."""
    query: dict[str, Any] = {"limit": limit}
    if state is not None:
        query["state"] = _choice("--state", state, ALERT_STATES)
    found = _alerts.validate_python(_api().request("GET", f"/api/alerts?{urlencode(query)}"))
    if _print_json(as_json, found):
        return
    table = Table("ID", "RULE", "STATE", "SEVERITY", "GROUP", "SUBJECTS", "STARTED", "RESOLVED")
    for a in found:
        state_text = a.state.value + (" (acked)" if a.acked_at else "")
        state_text += " (silenced)" if a.silenced else ""
        table.add_row(
            str(a.id),
            a.rule,
            state_text,
            a.severity.value,
            a.group,
            _few(a.subjects),
            _when(a.started_at),
            _when(a.resolved_at),
        )
    console.print(table)


@alert_app.command("ack")
def alert_ack(
    alert_id: Annotated[int, typer.Argument(metavar="ID", help="The alert's id")],
) -> None:
    """Acknowledge an alert: someone is on it."""
    out = AlertOut.model_validate(_api().request("POST", f"/api/alerts/{alert_id}/ack"))
    console.print(f"alert {out.id} ({out.rule}, {out.state.value}) acknowledged")


# --- silences ----------------------------------------------------------------------


@silence_app.command("add")
def silence_add(
    selector: Annotated[
        str, typer.Argument(help="all, room:NAME, tag:NAME or machine ids; several a,b")
    ],
    for_: Annotated[str, typer.Option("--for", help="How long, e.g. 2h")],
    rule: Annotated[
        str | None, typer.Option("--rule", help="Only this rule's alerts (default: every rule)")
    ] = None,
    comment: Annotated[str, typer.Option("--comment", help="Why")] = "",
) -> None:
    """Silence matching machines from now on; prints the silence id on its last line."""
    body: dict[str, Any] = {"selector": selector, "duration_s": _seconds("--for", for_)}
    body |= {"rule": rule} if rule else {}
    body |= {"comment": comment} if comment else {}
    out = SilenceOut.model_validate(_api().request("POST", "/api/alert-silences", body))
    console.print(f"silenced {out.selector} until {_when(out.ends_at)}")
    typer.echo(str(out.id))


@silence_app.command("list")
def silence_list(
    as_json: JsonFlag = False,
    every: Annotated[bool, typer.Option("--all", help="Ended ones too")] = False,
) -> None:
    """List the silences in force."""
    path = "/api/alert-silences" + ("?active=false" if every else "")
    found = _silences.validate_python(_api().request("GET", path))
    if _print_json(as_json, found):
        return
    table = Table("ID", "SELECTOR", "RULE", "FROM", "UNTIL", "ACTIVE", "BY", "COMMENT")
    for s in found:
        table.add_row(
            str(s.id),
            s.selector,
            s.rule or "(every rule)",
            _when(s.starts_at),
            _when(s.ends_at),
            _yes(s.active),
            s.created_by or "",
            s.comment,
        )
    console.print(table)


@silence_app.command("remove")
def silence_remove(
    silence_id: Annotated[int, typer.Argument(metavar="ID", help="The silence's id")],
) -> None:
    """End a silence now."""
    _api().request("DELETE", f"/api/alert-silences/{silence_id}")
    console.print(f"silence {silence_id} ended")


# --- maintenance windows -----------------------------------------------------------


@window_app.command("add")
def window_add(
    name: Annotated[str, typer.Argument(help="A name for it, e.g. lab-night")],
    selector: Annotated[str, typer.Argument(help="all, room:NAME, tag:NAME or machine ids")],
    start: Annotated[str | None, typer.Option("--from", help="Opens at HH:MM, local")] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Closes at HH:MM (at or before --from: next day)")
    ] = None,
    days: Annotated[
        str | None, typer.Option("--days", help="The days it opens, e.g. mon,tue (default: all)")
    ] = None,
    starts: Annotated[
        str | None, typer.Option("--starts", help="Once: from this time, e.g. 2026-03-02T09:00")
    ] = None,
    ends: Annotated[str | None, typer.Option("--ends", help="Once: until this time")] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone, e.g. Asia/Seoul (default: server's)")
    ] = None,
    report_left_on: Annotated[
        bool,
        typer.Option("--report-left-on", help="Tell --channel which machines are on at opening"),
    ] = False,
    channels: ChannelsOpt = None,
) -> None:
    """Add a maintenance window: --from/--to [--days], or --starts/--ends once."""
    zone = _zone(tz) if tz else None
    body: dict[str, Any] = {"name": name, "selector": selector}
    given = {"start": start, "end": end, "timezone": tz}
    body |= {key: value for key, value in given.items() if value is not None}
    if days is not None:
        body["days"] = [day.strip().lower() for day in days.split(",")]
    if starts is not None:
        body["starts_at"] = _instant("--starts", starts, zone)
    if ends is not None:
        body["ends_at"] = _instant("--ends", ends, zone)
    if report_left_on:
        body["report_left_on"] = True
    if channels:
        body["channels"] = channels
    out = WindowOut.model_validate(_api().request("POST", "/api/maintenance-windows", body))
    console.print(f"added window {out.name}: {_opens(out)}{' (open now)' if out.open_now else ''}")


@window_app.command("list")
def window_list(as_json: JsonFlag = False) -> None:
    """List maintenance windows."""
    found = _windows.validate_python(_api().request("GET", "/api/maintenance-windows"))
    if _print_json(as_json, found):
        return
    table = Table("NAME", "SELECTOR", "WHEN", "OPEN", "LEFT-ON REPORT")
    for w in found:
        report = ", ".join(w.channels) if w.report_left_on else ""
        table.add_row(w.name, w.selector, _opens(w), _yes(w.open_now), report)
    console.print(table)


@window_app.command("remove")
def window_remove(name: NameArg) -> None:
    """Remove a maintenance window."""
    _api().request("DELETE", f"/api/maintenance-windows/{_part(name)}")
    console.print(f"removed window {name}")


# --- deliveries --------------------------------------------------------------------


def deliveries(
    as_json: JsonFlag = False,
    state: Annotated[
        str | None, typer.Option("--state", help="queued, sending, delivered or dead")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Of this channel")] = None,
    alert: Annotated[int | None, typer.Option("--alert", min=1, help="Of this alert")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many")] = 100,
) -> None:
    """List the messages sent to channels, newest first."""
    query: dict[str, Any] = {"limit": limit}
    if state is not None:
        query["state"] = _choice("--state", state, tuple(s.value for s in DeliveryState))
    if channel is not None:
        query["channel"] = channel
    if alert is not None:
        query["alert"] = alert
    raw = _api().request("GET", f"/api/deliveries?{urlencode(query)}")
    found = _deliveries.validate_python(raw)
    if _print_json(as_json, found):
        return
    table = Table("ID", "CHANNEL", "KIND", "TITLE", "STATE", "TRIES", "LAST", "QUEUED")
    for d in found:
        last = " ".join(part for part in (str(d.last_status or ""), d.last_error or "") if part)
        table.add_row(
            d.id,
            d.channel,
            d.kind.value,
            d.title,
            d.state.value,
            str(d.attempts),
            last,
            _when(d.created_at),
        )
    console.print(table)


# --- helpers -----------------------------------------------------------------------


def _api() -> ApiClient:
    return ApiClient.from_env()


def _part(name: str) -> str:
    return quote(name, safe="")


def _print_json(as_json: bool, items: Sequence[BaseModel]) -> bool:
    if as_json:
        typer.echo(json.dumps([item.model_dump(mode="json") for item in items], ensure_ascii=False))
    return as_json


def _seconds(option: str, text: str) -> float:
    try:
        return parse_duration(text)
    except typer.BadParameter as exc:
        raise CliError(f"{option}: {exc.message}") from None


def _choice(option: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise CliError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(f"--tz: unknown time zone {name!r}; use a name like Asia/Seoul") from None


def _instant(option: str, text: str, zone: ZoneInfo | None) -> str:
    """An ISO time for the API; without an offset, it is in --tz, else this machine's."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"{option}: {text!r} is not a time like 2026-03-02T09:00 or 2026-03-02T09:00+09:00"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone) if zone is not None else at.astimezone()
    return at.isoformat()


def _condition(rule: RuleOut) -> str:
    words = [rule.kind.value]
    if rule.metric is not None and rule.above is not None:
        unit = " MiB" if rule.metric == "program_rss" else "%"
        words = [f"{rule.metric} > {rule.above:g}{unit}"]
    if rule.include_shutdown:
        words.append("shutdowns too")
    if rule.for_s:
        words.append(f"for {_duration(rule.for_s)}")
    return ", ".join(words)


def _opens(window: WindowOut) -> str:
    if window.starts_at is not None and window.ends_at is not None:
        return f"{_when(window.starts_at)} to {_when(window.ends_at)}"
    days = ",".join(window.days) if window.days else "every day"
    return f"{days} {window.start}-{window.end} {window.timezone}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _when(at: datetime | None) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M") if at is not None else ""


def _few(subjects: list[str]) -> str:
    shown = ", ".join(subjects[:3])
    return shown + (f" +{len(subjects) - 3}" if len(subjects) > 3 else "")


def _yes(value: bool) -> str:
    return "yes" if value else "no"
