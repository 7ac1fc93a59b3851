"""One rule's alert state from one evaluation to the next: pure, no I/O.

Each subject goes ok → pending → firing → ok. A subject is *pending* while it has been
bad for less than the rule's ``for``; then *firing*. One that goes to firing
``flap_count`` times within ``flap_window_s`` is *flapping*: one notice says so, and
nothing more is told of it until it has not gone to firing for a whole window.

Subjects in trouble are grouped, by rule and room, into alerts (incidents), the way
Alertmanager groups: an alert's first message waits ``group_wait_s`` to gather the
subjects that go bad together, a change after that waits until ``group_interval_s``
after the last message, and a firing alert nobody acknowledged is told again every
``repeat_s``. An alert is resolved when none of its subjects is in trouble; its last
message says so (after the group interval, so that others recovering with it are in
the same message). Silenced subjects and flapping ones are left as the last message
told them. A *momentary* kind (a failed command run) is told once and never resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from wcms.server.services.alerts.conditions import Observation
from wcms.server.services.alerts.fleet import group_of
from wcms.server.store.alert_config import RuleRecord
from wcms.server.store.alert_state import AlertRecord, SubjectRecord

OK, PENDING, FIRING, RESOLVED = "ok", "pending", "firing", "resolved"


@dataclass(frozen=True, slots=True)
class FlapPolicy:
    count: int
    window_s: float


@dataclass(eq=False)
class Incident:
    """An alert as the tracker works on it; ``id`` is None until it is stored."""

    id: int | None
    group_key: str
    state: str
    subjects: list[str]
    started_at: datetime
    resolved_at: datetime | None = None
    acked: bool = False
    next_notify_at: datetime | None = None
    last_notified_at: datetime | None = None
    told: list[str] = field(default_factory=list)
    summary: str = ""
    changed: bool = False
    dropped: bool = False  # it never fired: removed, as if it had not been

    @classmethod
    def of(cls, record: AlertRecord) -> Incident:
        return cls(
            id=record.id,
            group_key=record.group_key,
            state=record.state,
            subjects=list(record.subjects),
            started_at=record.started_at,
            resolved_at=record.resolved_at,
            acked=record.acked_at is not None,
            next_notify_at=record.next_notify_at,
            last_notified_at=record.last_notified_at,
            told=list((record.notified or {}).get("firing", [])),
            summary=record.summary,
        )


@dataclass(eq=False)
class Subject:
    """A subject as the tracker works on it; ``id`` is None until it is stored."""

    id: int | None
    key: str
    group_key: str
    state: str
    since: datetime
    summary: str
    flips: list[datetime] = field(default_factory=list)
    flapping: bool = False
    # Its alert: the one it is in while in trouble, then the last it was in.
    incident: Incident | None = None
    changed: bool = False

    @property
    def member(self) -> bool:
        """Whether it holds its alert open: in trouble, or flapping."""
        return self.state != OK or self.flapping

    @classmethod
    def of(cls, record: SubjectRecord, incident: Incident | None) -> Subject:
        return cls(
            id=record.id,
            key=record.subject,
            group_key=record.group_key,
            state=record.state,
            since=record.since,
            summary=record.summary,
            flips=[datetime.fromisoformat(at) for at in record.flips],
            flapping=record.flapping,
            incident=incident,
        )


class NoticeKind(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    FLAPPING = "flapping"


@dataclass(frozen=True, slots=True)
class Notice:
    """A message to send to the rule's channels about ``incident``."""

    kind: NoticeKind
    incident: Incident
    firing: tuple[Subject, ...] = ()
    resolved: tuple[Subject, ...] = ()
    repeat: bool = False


class RuleTracker:
    """Steps one rule's subjects and alerts to ``now``."""

    def __init__(
        self,
        rule: RuleRecord,
        *,
        momentary: bool,
        flap: FlapPolicy,
        subjects: Iterable[SubjectRecord],
        alerts: Iterable[AlertRecord],
    ) -> None:
        self.rule = rule
        self.momentary = momentary
        self.flap = flap
        self.incidents = [Incident.of(record) for record in alerts]
        by_id = {incident.id: incident for incident in self.incidents}
        self.subjects = {
            record.subject: Subject.of(record, by_id.get(record.alert_id)) for record in subjects
        }
        self.notices: list[Notice] = []
        # Subjects found flapping in this step: each gets its one notice.
        self._flapped: list[Subject] = []

    # --- the step ----------------------------------------------------------------------

    def step(
        self,
        now: datetime,
        observed: Iterable[Observation],
        *,
        quiet: Callable[[Observation], bool],
        silenced: Callable[[str], bool],
    ) -> list[Notice]:
        """Take in what is bad ``now``, and return the messages due. ``quiet`` tells an
        observation whose trouble began inside a maintenance window (it raises
        nothing); ``silenced`` a subject nobody wants to hear of now."""
        self.notices, self._flapped = [], []
        bad = {observation.subject: observation for observation in observed}
        for observation in bad.values():
            self._bad(now, observation, quiet)
        if not self.momentary:
            for subject in self.subjects.values():
                if subject.key not in bad and subject.state != OK:
                    self._good(now, subject)
        for subject in self.subjects.values():
            self._settle_flapping(now, subject)
            self._join(now, subject)
        for incident in self.incidents:
            if incident.state != RESOLVED:
                self._update(now, incident, silenced)
        for incident in self.incidents:
            if incident.next_notify_at is not None and incident.next_notify_at <= now:
                self._notify(now, incident, silenced)
        return self.notices

    def _bad(
        self, now: datetime, observation: Observation, quiet: Callable[[Observation], bool]
    ) -> None:
        subject = self.subjects.get(observation.subject)
        if subject is not None and subject.state != OK:
            if subject.state == PENDING and self._due(now, subject):
                subject.summary = observation.line
                self._fire(now, subject)
            return
        if subject is not None and self.momentary:
            return  # told already
        if quiet(observation):
            return
        group_key = group_of(observation.machine)
        if subject is None:
            subject = Subject(None, observation.subject, group_key, OK, now, observation.line)
            self.subjects[subject.key] = subject
        subject.group_key, subject.summary, subject.since = group_key, observation.line, now
        subject.state, subject.changed = PENDING, True
        if self.momentary or self._due(now, subject):
            self._fire(now, subject)

    def _due(self, now: datetime, subject: Subject) -> bool:
        return (now - subject.since).total_seconds() >= self.rule.for_s

    def _fire(self, now: datetime, subject: Subject) -> None:
        subject.state, subject.since, subject.changed = FIRING, now, True
        if self.momentary:
            return
        subject.flips.append(now)
        self._prune_flips(now, subject)
        if not subject.flapping and len(subject.flips) >= self.flap.count:
            subject.flapping = True
            self._flapped.append(subject)

    def _good(self, now: datetime, subject: Subject) -> None:
        subject.state, subject.since, subject.changed = OK, now, True

    def _prune_flips(self, now: datetime, subject: Subject) -> None:
        horizon = now - timedelta(seconds=self.flap.window_s)
        kept = [at for at in subject.flips if at > horizon]
        if kept != subject.flips:
            subject.flips, subject.changed = kept, True

    def _settle_flapping(self, now: datetime, subject: Subject) -> None:
        self._prune_flips(now, subject)
        if subject.flapping and not subject.flips:
            subject.flapping, subject.changed = False, True  # stable again

    def _join(self, now: datetime, subject: Subject) -> None:
        """Put a subject in trouble into its group's open alert."""
        if not subject.member:
            return
        incident = subject.incident
        if (
            incident is None
            or incident.state == RESOLVED
            or incident.group_key != subject.group_key
        ):
            incident = self._open(now, subject.group_key)
            subject.incident, subject.changed = incident, True
        if subject.key not in incident.subjects:
            incident.subjects.append(subject.key)
            incident.changed = True

    def _open(self, now: datetime, group_key: str) -> Incident:
        for incident in self.incidents:
            if incident.group_key == group_key and incident.state != RESOLVED:
                return incident
        incident = Incident(None, group_key, PENDING, [], now, changed=True)
        self.incidents.append(incident)
        return incident

    def members(self, incident: Incident) -> list[Subject]:
        return [s for s in self.subjects.values() if s.incident is incident and s.member]

    def of(self, incident: Incident) -> list[Subject]:
        """Every subject whose last alert is ``incident``, in trouble or not."""
        return [s for s in self.subjects.values() if s.incident is incident]

    def _update(self, now: datetime, incident: Incident, silenced: Callable[[str], bool]) -> None:
        """An open alert's state and next message after its subjects moved."""
        members = self.members(incident)
        for subject in self._flapped:
            if subject.incident is incident and not silenced(subject.key):
                self.notices.append(Notice(NoticeKind.FLAPPING, incident, firing=(subject,)))
                # Told as in trouble: it is resolved, or told again, once it is stable.
                if subject.key not in incident.told:
                    incident.told, incident.changed = sorted({*incident.told, subject.key}), True
        if not members:
            if incident.state == PENDING:  # never fired: nothing to tell, nothing to keep
                incident.dropped = True
                for subject in self.of(incident):
                    subject.incident, subject.changed = None, True
                return
            incident.state, incident.resolved_at, incident.changed = RESOLVED, now, True
            incident.next_notify_at = self._after_interval(now, incident) if incident.told else None
            return
        if any(s.state == FIRING for s in members) and incident.state == PENDING:
            incident.state, incident.changed = FIRING, True
            incident.next_notify_at = now + timedelta(seconds=self.rule.group_wait_s)
            return
        if incident.state != FIRING:
            return
        if {s.key for s in self._shown(incident, silenced)} == set(incident.told):
            return
        # Something to tell: after the group wait if nothing was told yet, else once
        # the group interval since the last message is over.
        if incident.last_notified_at is None:
            due = incident.next_notify_at or now
        else:
            due = self._after_interval(now, incident)
        if incident.next_notify_at is None or due < incident.next_notify_at:
            incident.next_notify_at, incident.changed = due, True

    def _after_interval(self, now: datetime, incident: Incident) -> datetime:
        if incident.last_notified_at is None:
            return now
        return max(now, incident.last_notified_at + timedelta(seconds=self.rule.group_interval_s))

    def _shown(self, incident: Incident, silenced: Callable[[str], bool]) -> list[Subject]:
        """The subjects a message now names as firing: those firing, but for silenced
        and flapping ones, which stay as the last message told them."""
        told = set(incident.told)
        shown = []
        for subject in self.of(incident):
            held = subject.flapping or silenced(subject.key)
            if (subject.key in told) if held else (subject.state == FIRING and subject.member):
                shown.append(subject)
        return shown

    def _notify(self, now: datetime, incident: Incident, silenced: Callable[[str], bool]) -> None:
        incident.changed = True
        incident.next_notify_at = None
        told = set(incident.told)
        if incident.state == RESOLVED:
            if told and not self.momentary:
                resolved = tuple(s for s in self.of(incident) if s.key in told)
                self.notices.append(Notice(NoticeKind.RESOLVED, incident, resolved=resolved))
                incident.last_notified_at = now
            incident.told = []
            return
        shown = self._shown(incident, silenced)
        if self.momentary:
            self._told_once(now, incident, shown, silenced)
            return
        if not shown:
            return  # nothing to tell until a silence ends or a subject fires
        keys = {s.key for s in shown}
        repeat_due = (
            incident.last_notified_at is not None
            and not incident.acked
            and now >= incident.last_notified_at + timedelta(seconds=self.rule.repeat_s)
        )
        if keys != told or repeat_due:
            gone = tuple(s for s in self.of(incident) if s.key in told and s.key not in keys)
            self.notices.append(
                Notice(
                    NoticeKind.FIRING,
                    incident,
                    firing=tuple(shown),
                    resolved=gone,
                    repeat=keys == told,
                )
            )
            incident.told = sorted(keys)
            incident.last_notified_at = now
        if not incident.acked and incident.last_notified_at is not None:
            incident.next_notify_at = incident.last_notified_at + timedelta(
                seconds=self.rule.repeat_s
            )

    def _told_once(
        self,
        now: datetime,
        incident: Incident,
        shown: list[Subject],
        silenced: Callable[[str], bool],
    ) -> None:
        """A momentary alert: one message names its subjects, then it is done with,
        resolved without a message of its own (silenced subjects are done with untold)."""
        if shown:
            self.notices.append(Notice(NoticeKind.FIRING, incident, firing=tuple(shown)))
            incident.last_notified_at = now
        for subject in self.members(incident):
            subject.state, subject.changed = OK, True
        incident.state, incident.resolved_at, incident.told = RESOLVED, now, []

    # --- what to store -----------------------------------------------------------------

    def prunable(self, now: datetime, *, keep_s: float) -> list[Subject]:
        """Stored subjects with nothing left to remember: ok, not flapping, no recent
        flips, and their last alert done with. A momentary kind's are kept ``keep_s``
        after they were told: that record is what makes them told once."""
        gone = []
        for subject in self.subjects.values():
            if subject.id is None or subject.member or subject.flips:
                continue
            if self.momentary and (now - subject.since).total_seconds() < keep_s:
                continue
            incident = subject.incident
            if (
                incident is not None
                and not incident.dropped
                and (incident.state != RESOLVED or incident.next_notify_at is not None)
            ):
                continue
            gone.append(subject)
        return gone
