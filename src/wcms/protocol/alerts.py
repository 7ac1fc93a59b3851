"""The admin API's bodies for alerts, shared by the server and the CLI: channels (where a
message goes), rules (what is watched), alerts (incidents), silences, maintenance windows
and the outbox's deliveries; and :class:`AlertMessage`, what a channel's transport turns
into a Discord embed, a Slack message, a webhook body or a mail.

A channel's URL and secret go in and never come out whole: a Discord or Slack webhook URL
is its own credential and an SMTP URL holds a password, so an answer shows them with
``***`` in place of the secret parts.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Literal, Self
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from wcms.protocol.admin import Body, Strict

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Letters, digits and . _ -",
    ),
]
Selector = Annotated[
    str,
    Field(
        min_length=1,
        max_length=512,
        description="all, room:NAME, tag:NAME or a machine id or hostname; several "
        "separated by commas",
    ),
]
Seconds = Annotated[float, Field(ge=0, le=30 * 86400)]


class RuleKind(StrEnum):
    MACHINE_OFFLINE = "machine_offline"
    PROGRAM_DOWN = "program_down"
    COMMAND_FAILED = "command_failed"
    METRIC = "metric"
    AGENT_CONFLICT = "agent_conflict"


class ChannelKind(StrEnum):
    DISCORD = "discord"
    SLACK = "slack"
    WEBHOOK = "webhook"
    EMAIL = "email"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class DeliveryKind(StrEnum):
    FIRING = "firing"  # new subjects in trouble, or the repeat of a firing alert
    RESOLVED = "resolved"  # every subject well again
    FLAPPING = "flapping"  # a subject going bad and good over and over
    DIGEST = "digest"  # machines left on when a maintenance window opened
    TEST = "test"  # "send test"


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD = "dead"


Metric = Literal["cpu", "ram", "disk", "program_rss"]
METRICS = ("cpu", "ram", "disk", "program_rss")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")


def check_selector(value: str) -> str:
    """``value`` if it is a selector an alert rule, silence or window may hold; ValueError
    saying what is wrong. Unlike a command's, it is not resolved now: a room may get its
    machines later."""
    terms = [term.strip() for term in value.split(",")]
    for term in terms:
        if not term:
            raise ValueError("a selector has an empty term")
        kind, colon, name = term.partition(":")
        if colon and kind in ("room", "tag"):
            if not name.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
                raise ValueError(f"selector {term!r} needs a name after '{kind}:'")
            continue
        if term == "online":
            raise ValueError("'online' changes by itself; an alert selector names machines")
        if not _TERM.match(term):
            raise ValueError(
                f"{term!r} is not all, room:NAME, tag:NAME, a machine id or a hostname"
            )
        if colon and kind not in ("room", "tag") and not _looks_like_id(term):
            raise ValueError(f"unknown selector kind {kind!r}: use room:, tag:, or all")
    return ",".join(terms)


def _looks_like_id(term: str) -> bool:
    # Machine ids may hold colons (a MAC address: hex pairs); a selector kind is a word.
    kind = term.partition(":")[0]
    return all(ch in "0123456789abcdefABCDEF" for ch in kind)


def check_channel_url(kind: ChannelKind, url: str) -> str:
    """``url`` if a channel of ``kind`` can send to it; ValueError saying what is wrong."""
    parts = urlsplit(url)
    if kind is ChannelKind.EMAIL:
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("an email channel's URL is smtp://user:pass@host:port?to=a@b")
        if not parts.hostname:
            raise ValueError("the SMTP URL names no host")
        recipients = [
            address for value in parse_qs(parts.query).get("to", []) for address in value.split(",")
        ]
        if not recipients or not all(_EMAIL.match(address) for address in recipients):
            raise ValueError("the SMTP URL needs ?to=ADDRESS (several separated by commas)")
    else:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a {kind.value} channel's URL is an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError("the URL's port is not a number from 1 to 65535") from None
    return url


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use a name like Asia/Seoul or UTC"
        ) from None
    return value


def check_clock(value: str) -> str:
    """``value`` if it is a time of day as HH:MM (24 h)."""
    if not re.fullmatch(r"\d{2}:\d{2}", value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM")
    try:
        time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day as HH:MM") from None
    return value


# --- channels ------------------------------------------------------------------------


class ChannelCreate(Strict):
    """``POST /api/alert-channels``."""

    name: Name
    kind: ChannelKind
    url: SecretStr = Field(
        description="Discord or Slack webhook URL, any http(s) URL for a webhook, "
        "smtp://user:pass@host:port?to=a@b for email (STARTTLS when the server offers it; "
        "smtps:// for TLS from the start)"
    )
    secret: SecretStr | None = Field(
        default=None, description="A webhook's HMAC-SHA256 key (X-WCMS-Signature)"
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _check(self) -> Self:
        url = self.url.get_secret_value()
        if len(url) > 2048:
            raise ValueError("url: at most 2048 characters")
        try:
            check_channel_url(self.kind, url)
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        if self.secret is not None:
            if self.kind is not ChannelKind.WEBHOOK:
                raise ValueError("secret: only a webhook channel signs its messages")
            if not 1 <= len(self.secret.get_secret_value()) <= 512:
                raise ValueError("secret: from 1 to 512 characters")
        return self


class ChannelPatch(Strict):
    """``PATCH /api/alert-channels/{name}``: the fields given replace the stored ones."""

    url: SecretStr | None = None
    secret: SecretStr | None = None
    enabled: bool | None = None


class ChannelOut(Body):
    id: int
    name: str
    kind: ChannelKind
    url: str = Field(description="With its secret parts shown as ***")
    has_secret: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None


class ChannelTestOut(Body):
    delivery: str = Field(description="The queued test message's delivery id")


# --- rules ---------------------------------------------------------------------------


class RuleFields(Strict):
    selector: Selector = "all"
    for_s: Seconds = Field(default=0.0, description="How long a subject is bad before firing")
    severity: Severity = Severity.WARNING
    channels: list[Name] = Field(default_factory=list, max_length=16)
    metric: Metric | None = Field(default=None, description="For kind metric")
    above: float | None = Field(
        default=None,
        gt=0,
        le=1e15,
        description="For kind metric: percent for cpu / ram / disk, MiB for program_rss",
    )
    include_shutdown: bool = Field(
        default=False, description="machine_offline: a graceful shutdown counts too"
    )
    group_wait_s: Seconds = Field(default=30.0, description="Wait to gather a group's first")
    group_interval_s: Seconds = Field(default=300.0, description="Between a group's messages")
    repeat_s: Seconds = Field(default=4 * 3600.0, description="Tell a firing alert again")
    enabled: bool = True

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        return check_selector(value)


class RuleCreate(RuleFields):
    """``POST /api/alert-rules``."""

    name: Name
    kind: RuleKind
    channels: list[Name] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_rule_params(self.kind, self.metric, self.above, self.include_shutdown)
        return self


def check_rule_params(
    kind: RuleKind, metric: str | None, above: float | None, include_shutdown: bool
) -> None:
    """ValueError, naming the field, when a rule's settings do not fit its kind."""
    if kind is RuleKind.METRIC:
        if metric is None:
            raise ValueError("metric: a metric rule names cpu, ram, disk or program_rss")
        if above is None:
            raise ValueError("above: a metric rule needs its threshold")
        if metric != "program_rss" and above > 100:
            raise ValueError("above: a percentage is at most 100")
    elif metric is not None or above is not None:
        raise ValueError(f"metric: only a metric rule has a metric, not {kind.value}")
    if include_shutdown and kind is not RuleKind.MACHINE_OFFLINE:
        raise ValueError("include_shutdown: only for machine_offline")


class RulePatch(Strict):
    """``PATCH /api/alert-rules/{name}``: the fields given replace the stored ones."""

    selector: Selector | None = None
    for_s: Seconds | None = None
    severity: Severity | None = None
    channels: list[Name] | None = Field(default=None, min_length=1, max_length=16)
    metric: Metric | None = None
    above: float | None = Field(default=None, gt=0, le=1e15)
    include_shutdown: bool | None = None
    group_wait_s: Seconds | None = None
    group_interval_s: Seconds | None = None
    repeat_s: Seconds | None = None
    enabled: bool | None = None

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return check_selector(value) if value is not None else None


class RuleOut(Body):
    id: int
    name: str
    kind: RuleKind
    selector: str
    for_s: float
    severity: Severity
    channels: list[str]
    metric: Metric | None = None
    above: float | None = None
    include_shutdown: bool = False
    group_wait_s: float
    group_interval_s: float
    repeat_s: float
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None


# --- alerts --------------------------------------------------------------------------


class AlertOut(Body):
    """One incident: a rule's subjects of one group (a room) in trouble together."""

    id: int
    rule: str
    kind: RuleKind
    severity: Severity
    state: AlertState
    group: str = Field(description="What the subjects share: room:NAME, or all")
    subjects: list[str] = Field(description="Machine ids, or MACHINE/PROGRAM")
    firing: list[str] = Field(default_factory=list, description="Subjects in trouble now")
    summary: str
    started_at: datetime
    resolved_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    silenced: bool = False
    last_notified_at: datetime | None = None


class SilenceCreate(Strict):
    """``POST /api/alert-silences``: no message for subjects matching ``selector`` (of
    ``rule``, or of every rule) for ``duration_s``."""

    selector: Selector
    duration_s: float = Field(gt=0, le=90 * 86400)
    rule: Name | None = None
    comment: str = Field(default="", max_length=500)

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        return check_selector(value)


class SilenceOut(Body):
    id: int
    selector: str
    rule: str | None = None
    comment: str
    starts_at: datetime
    ends_at: datetime
    active: bool
    created_by: str | None = None


# --- maintenance windows -------------------------------------------------------------


class WindowCreate(Strict):
    """``POST /api/maintenance-windows``: either recurring (``start`` to ``end`` local
    time on ``days``; an end at or before the start runs into the next morning) or once
    (``starts_at`` to ``ends_at``). Machines that go offline inside raise nothing."""

    name: Name
    selector: Selector
    days: list[Day] | None = Field(default=None, min_length=1, max_length=7)
    start: str | None = Field(default=None, description="HH:MM, local time")
    end: str | None = Field(default=None, description="HH:MM, local time")
    timezone: str | None = Field(
        default=None, max_length=64, description="Default: the server's time zone"
    )
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    report_left_on: bool = Field(
        default=False, description="Tell the channels which machines are on at opening"
    )
    channels: list[Name] = Field(default_factory=list, max_length=16)

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        return check_selector(value)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        return check_clock(value) if value is not None else None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value is not None else None

    @model_validator(mode="after")
    def _check(self) -> Self:
        recurring = self.start is not None or self.end is not None or self.days is not None
        once = self.starts_at is not None or self.ends_at is not None
        if recurring and once:
            raise ValueError("starts_at: a window is recurring (days, start, end) or once")
        if recurring and (self.start is None or self.end is None):
            raise ValueError("start: a recurring window needs start and end (HH:MM)")
        if once:
            if self.starts_at is None or self.ends_at is None:
                raise ValueError("ends_at: a one-off window needs starts_at and ends_at")
            if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
                raise ValueError("starts_at: give times with their offset (…+09:00 or Z)")
            if self.ends_at <= self.starts_at:
                raise ValueError("ends_at: must come after starts_at")
        if not recurring and not once:
            raise ValueError("start: give start and end (recurring) or starts_at and ends_at")
        if self.report_left_on and not self.channels:
            raise ValueError("channels: the left-on report needs a channel")
        return self


class WindowOut(Body):
    id: int
    name: str
    selector: str
    days: list[Day] | None = None
    start: str | None = None
    end: str | None = None
    timezone: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    report_left_on: bool
    channels: list[str]
    open_now: bool
    created_at: datetime
    created_by: str | None = None


# --- messages and the outbox ---------------------------------------------------------


class AlertMessage(Body):
    """What one delivery says; each transport renders it its own way (and the generic
    webhook sends :meth:`webhook_body`). Stored with the delivery, so a retry after a
    restart sends what was decided then."""

    kind: DeliveryKind
    title: str = Field(description="One line, e.g. '[FIRING] lab-offline: 12 machines of A101'")
    summary: str = Field(description="A sentence or two for the body of the message")
    severity: Severity = Severity.WARNING
    alert_id: int | None = None
    rule: str | None = None
    rule_kind: RuleKind | None = None
    state: AlertState | None = None
    subjects: list[str] = Field(default_factory=list, description="All of them")
    lines: list[str] = Field(
        default_factory=list, description="One line per subject; a transport shows 10"
    )
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    link: str | None = Field(default=None, description="The alert on the dashboard")

    def webhook_body(self) -> dict[str, object]:
        """The generic webhook's JSON body (PRODUCT.md, "Alerts")."""
        return {
            "alert": {
                "id": self.alert_id,
                "rule": self.rule,
                "kind": self.rule_kind.value if self.rule_kind else self.kind.value,
                "state": self.state.value if self.state else self.kind.value,
                "severity": self.severity.value,
                "subjects": self.subjects,
                "summary": self.summary,
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            },
            "message": {"kind": self.kind.value, "title": self.title, "lines": self.lines},
        }


class AttemptOut(Body):
    at: datetime
    duration_ms: float
    status_code: int | None = None
    outcome: Literal["delivered", "retry", "rate_limited", "dead"]
    error: str | None = None


class DeliveryOut(Body):
    id: str = Field(description="Also the X-WCMS-Delivery header")
    channel: str
    alert_id: int | None = None
    kind: DeliveryKind
    title: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = None
    deadline: datetime
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None


class DeliveryDetail(DeliveryOut):
    message: AlertMessage
    attempt_log: list[AttemptOut] = Field(default_factory=list)


# The bus topic published after deliveries are queued, to wake the outbox at once.
OUTBOX_TOPIC = "alert_outbox"
# The bus topic published when an alert changes (the dashboard's count, its page).
ALERT_TOPIC = "alert"
