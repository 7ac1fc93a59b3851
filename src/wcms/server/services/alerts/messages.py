"""What alert messages say: a title line, a sentence, and one line per subject (the
transports show ten of them and say how many more)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from wcms.protocol.alerts import AlertMessage, AlertState, DeliveryKind, RuleKind, Severity
from wcms.server.services.alerts.conditions import Condition
from wcms.server.services.alerts.tracking import Incident, Notice, NoticeKind, Subject
from wcms.server.store.alert_config import RuleRecord, WindowRecord
from wcms.server.store.alert_facts import MachineFacts


def where(group_key: str) -> str:
    """ " in A101" for a room's group, nothing for the rest."""
    kind, _, name = group_key.partition(":")
    return f" in {name}" if kind == "room" and name else ""


def describe(condition: Condition, count: int, group_key: str) -> str:
    """ "12 machines offline in A101"."""
    noun = condition.one if count == 1 else condition.many
    return f"{count} {noun}{where(group_key)}"


def name_of(subject: Subject) -> str:
    """The subject as its line names it ("lab-01", "game-01/palworld")."""
    return subject.summary.partition(":")[0] or subject.key


def message(rule: RuleRecord, condition: Condition, notice: Notice) -> AlertMessage:
    incident = notice.incident
    if notice.kind is NoticeKind.FLAPPING:
        return _flapping(rule, incident, notice.firing[0])
    if notice.kind is NoticeKind.RESOLVED:
        subjects = notice.resolved
        what = describe(condition, len(subjects), incident.group_key)
        return _message(
            rule,
            incident,
            DeliveryKind.RESOLVED,
            title=f"[RESOLVED] {rule.name}: {what}",
            summary=f"Resolved: {_names(subjects)} back to normal.",
            subjects=subjects,
            lines=[f"{name_of(s)}: back to normal" for s in subjects],
            state=AlertState.RESOLVED,
        )
    firing = notice.firing
    what = describe(condition, len(firing), incident.group_key)
    summary = f"{what}, since {_clock(incident.started_at)}."
    if notice.repeat:
        summary = f"Still {what}, since {_clock(incident.started_at)}."
    if notice.resolved:
        summary += f" Back to normal: {_names(notice.resolved)}."
    lines = [s.summary for s in firing] + [f"{name_of(s)}: back to normal" for s in notice.resolved]
    return _message(
        rule,
        incident,
        DeliveryKind.FIRING,
        title=f"[FIRING] {rule.name}: {what}",
        summary=summary,
        subjects=firing,
        lines=lines,
        state=AlertState.FIRING,
    )


def _flapping(rule: RuleRecord, incident: Incident, subject: Subject) -> AlertMessage:
    return _message(
        rule,
        incident,
        DeliveryKind.FLAPPING,
        title=f"[FLAPPING] {rule.name}: {name_of(subject)}{where(incident.group_key)}",
        summary=(
            f"{name_of(subject)} keeps going bad and good again; nothing more is told of it "
            "until it is stable."
        ),
        subjects=(subject,),
        lines=[subject.summary],
        state=AlertState.FIRING,
    )


def _message(
    rule: RuleRecord,
    incident: Incident,
    kind: DeliveryKind,
    *,
    title: str,
    summary: str,
    subjects: Sequence[Subject],
    lines: list[str],
    state: AlertState,
) -> AlertMessage:
    return AlertMessage(
        kind=kind,
        title=title,
        summary=summary,
        severity=Severity(rule.severity),
        alert_id=incident.id,
        rule=rule.name,
        rule_kind=RuleKind(rule.kind),
        state=state,
        subjects=[s.key for s in subjects],
        lines=lines,
        started_at=incident.started_at,
        resolved_at=incident.resolved_at if state is AlertState.RESOLVED else None,
    )


def left_on(window: WindowRecord, machines: Sequence[MachineFacts]) -> AlertMessage:
    """The report of machines still on when a maintenance window opened."""
    count = len(machines)
    noun = "machine" if count == 1 else "machines"
    return AlertMessage(
        kind=DeliveryKind.DIGEST,
        title=f"[LEFT ON] {window.name}: {count} {noun} still on",
        summary=f"{count} {noun} of {window.selector} still on when {window.name} began.",
        severity=Severity.INFO,
        subjects=[m.id for m in machines],
        lines=[f"{m.hostname}" + (f" ({m.room})" if m.room else "") for m in machines],
    )


def _names(subjects: Sequence[Subject], shown: int = 3) -> str:
    names = [name_of(s) for s in subjects]
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")
