"""The alert engine: evaluates every rule against the fleet, keeps each subject's state,
groups subjects into alerts and queues their messages in the outbox.

One server replica evaluates at a time: the one holding the ``alert-engine`` lease
(renewed every evaluation; another takes over when it runs out). An evaluation runs at
least every ``alert_tick_s`` and at once on a presence or program change. It reads the
fleet, steps each rule's :class:`~wcms.server.services.alerts.tracking.RuleTracker`,
and writes the subjects, the alerts and their messages in one transaction, so a restart
neither forgets a firing alert nor tells it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol.alerts import (
    ALERT_TOPIC,
    OUTBOX_TOPIC,
    AlertOut,
    AlertState,
    RuleKind,
    Severity,
)
from wcms.protocol.program_admin import PROGRAM_EVENT_TOPIC
from wcms.server.bus import Bus
from wcms.server.bus.base import Subscription
from wcms.server.errors import NotFound, StorageError
from wcms.server.services.alerts import messages
from wcms.server.services.alerts.conditions import CONDITIONS, Condition, Observation
from wcms.server.services.alerts.conditions.command_failed import HORIZON
from wcms.server.services.alerts.fleet import Fleet, machine_of, selects
from wcms.server.services.alerts.tracking import (
    FIRING,
    FlapPolicy,
    Incident,
    Notice,
    RuleTracker,
)
from wcms.server.services.alerts.windows import last_opening
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import alert_config as config_store
from wcms.server.store import alert_facts as facts_store
from wcms.server.store import alert_state as store
from wcms.server.store import deliveries as delivery_store
from wcms.server.store.alert_config import RuleRecord, SilenceRecord, WindowRecord
from wcms.server.store.alert_facts import MachineFacts
from wcms.server.store.alert_state import AlertRecord, NewAlert, NewSubject, SubjectRecord
from wcms.server.store.engine import Database
from wcms.server.telemetry import Telemetry

log = logging.getLogger("wcms.alerts.engine")

LEASE = "alert-engine"
# What starts an evaluation before its tick.
WAKE_TOPICS = ("presence", PROGRAM_EVENT_TOPIC)
# Evaluations are at least this far apart, however many changes come.
MIN_GAP_S = 0.2


@dataclass
class _Pass:
    """One rule's evaluation, between reading and writing."""

    rule: RuleRecord
    condition: Condition
    tracker: RuleTracker
    notices: list[Notice]


class AlertEngine:
    def __init__(
        self, db: Database, settings: Settings, *, bus: Bus, telemetry: Telemetry, holder: str
    ) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.telemetry = telemetry
        self.holder = holder
        self.flap = FlapPolicy(settings.alert_flap_count, settings.alert_flap_window_s)
        self.leading = False
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._failing = False

    # --- the worker ------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is not None:
            return
        self._subscription = self.bus.subscribe(list(WAKE_TOPICS), maxsize=64)
        self._task = asyncio.create_task(self._run(), name="alert-engine")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self.leading:
            self.leading = False
            with suppress(StorageError):
                async with self.db.begin() as conn:
                    await store.release_lease(conn, LEASE, holder=self.holder)

    async def _run(self) -> None:
        assert self._subscription is not None
        while True:
            try:
                if await self._lead():
                    await self.evaluate()
            except StorageError:
                if not self._failing:  # said once per outage
                    log.warning("the alert engine cannot reach the database; retrying")
                self._failing = True
            except Exception:  # an evaluation must never kill the worker
                log.exception("alert evaluation failed")
            else:
                if self._failing:
                    log.info("the alert engine reaches the database again")
                self._failing = False
            await asyncio.sleep(MIN_GAP_S)
            await self._subscription.get(self.settings.alert_tick_s)
            self._subscription.drain()

    async def _lead(self) -> bool:
        """Take or renew the lease: whether this replica evaluates."""
        ttl = max(10.0, 5 * self.settings.alert_tick_s)
        async with self.db.begin() as conn:
            leading = await store.hold_lease(
                conn, LEASE, holder=self.holder, now=utcnow(), ttl_s=ttl
            )
        if leading != self.leading:
            log.info("alert engine %s", "leads" if leading else "stands by")
        self.leading = leading
        return leading

    # --- one evaluation --------------------------------------------------------------

    async def evaluate(self, now: datetime | None = None) -> int:
        """Evaluate every enabled rule at ``now``; the number of messages queued."""
        now = now or utcnow()
        async with self.db.connect() as conn:
            rules = await config_store.rules(conn, enabled_only=True)
            subjects = await store.subjects(conn)
            live = await store.live_alerts(conn)
            windows = await config_store.windows(conn)
            reports = [w for w in windows if w.report_left_on]
            if not (rules or subjects or live or reports):
                self.telemetry.alerts_firing.set(0)
                return 0
            fleet = await Fleet.read(conn, now)
            silences = await config_store.silences(conn, active_at=now)
            channels = {c.id for c in await config_store.channels(conn) if c.enabled}
            passes = await self._step_rules(fleet, rules, subjects, live, windows, silences, now)
        queued = 0
        async with self.db.begin() as conn:
            for done in passes:
                queued += await self._write(conn, done, channels, now)
            enabled = {rule.id for rule in rules}
            await self._forget_disabled(conn, subjects, live, enabled, now)
            queued += await self._left_on(conn, fleet, reports, channels, now)
            firing = await store.count_firing(conn)
        self.telemetry.alerts_firing.set(firing)
        if queued:
            self.bus.publish(OUTBOX_TOPIC, {})
        if any(done.notices or _touched(done.tracker) for done in passes):
            self.bus.publish(ALERT_TOPIC, {"firing": firing})
        return queued

    async def _step_rules(
        self,
        fleet: Fleet,
        rules: list[RuleRecord],
        subjects: list[SubjectRecord],
        live: list[AlertRecord],
        windows: list[WindowRecord],
        silences: list[SilenceRecord],
        now: datetime,
    ) -> list[_Pass]:
        by_rule: defaultdict[int, list[SubjectRecord]] = defaultdict(list)
        for subject in subjects:
            by_rule[subject.rule_id].append(subject)
        alerts_of: defaultdict[int, list[AlertRecord]] = defaultdict(list)
        for alert in live:
            alerts_of[alert.rule_id].append(alert)

        def quiet(observation: Observation) -> bool:
            at = observation.since or now
            return any(
                selects(w.selector, observation.machine) and last_opening(w, at) is not None
                for w in windows
            )

        passes = []
        for rule in rules:
            condition = CONDITIONS[RuleKind(rule.kind)]
            tracker = RuleTracker(
                rule,
                momentary=condition.momentary,
                flap=self.flap,
                subjects=by_rule[rule.id],
                alerts=alerts_of[rule.id],
            )
            observed = await condition.observe(rule, fleet, fleet.selected(rule.selector))
            silenced = _silencer(rule, fleet, silences)
            notices = tracker.step(now, observed, quiet=quiet, silenced=silenced)
            passes.append(_Pass(rule, condition, tracker, notices))
        return passes

    async def _write(
        self, conn: AsyncConnection, done: _Pass, channels: set[int], now: datetime
    ) -> int:
        tracker, rule = done.tracker, done.rule
        for incident in tracker.incidents:
            members = tracker.members(incident) or tracker.of(incident)
            if members:
                incident.summary = messages.describe(
                    done.condition, len(members), incident.group_key
                )
            if incident.dropped:
                continue
            if incident.id is None:
                incident.id = await store.insert_alert(conn, _new_alert(rule, incident))
                incident.changed = True
        await store.update_alerts(
            conn,
            [_alert_record(rule, i) for i in tracker.incidents if i.changed and not i.dropped],
        )
        pruned = tracker.prunable(now, keep_s=2 * HORIZON.total_seconds())
        await store.delete_subjects(conn, [s.id for s in pruned if s.id is not None])
        gone = set(map(id, pruned))
        new: list[NewSubject] = []
        changed: list[tuple[int, NewSubject]] = []
        for subject in tracker.subjects.values():
            if id(subject) in gone or not (subject.changed or subject.id is None):
                continue
            last = subject.incident
            alert_id = last.id if last is not None and not last.dropped else None
            row = NewSubject(
                rule_id=rule.id,
                subject=subject.key,
                group_key=subject.group_key,
                state=subject.state,
                since=subject.since,
                alert_id=alert_id,
                summary=subject.summary,
                flips=[at.isoformat() for at in subject.flips],
                flapping=subject.flapping,
                updated_at=now,
            )
            if subject.id is None:
                new.append(row)
            else:
                changed.append((subject.id, row))
        await store.insert_subjects(conn, new)
        await store.update_subjects(conn, changed)
        await store.delete_alerts(
            conn, [i.id for i in tracker.incidents if i.dropped and i.id is not None]
        )
        queued = 0
        targets = [c for c in rule.channel_ids if c in channels]
        for notice in done.notices:
            message = messages.message(rule, done.condition, notice)
            for channel_id in targets:
                await delivery_store.enqueue(
                    conn,
                    channel_id=channel_id,
                    message=message,
                    now=now,
                    alert_id=notice.incident.id,
                )
                queued += 1
            log.info(
                "alert %s: %s",
                notice.incident.id,
                message.title,
                extra={"alert": notice.incident.id, "rule": rule.name, "kind": notice.kind.value},
            )
        return queued

    async def _forget_disabled(
        self,
        conn: AsyncConnection,
        subjects: list[SubjectRecord],
        live: list[AlertRecord],
        enabled: set[int],
        now: datetime,
    ) -> None:
        """A rule turned off tells nothing more: its subjects are forgotten and its
        alerts resolved without a message."""
        await store.delete_subjects(conn, [s.id for s in subjects if s.rule_id not in enabled])
        ended = [
            replace(
                alert,
                state=AlertState.RESOLVED.value,
                resolved_at=alert.resolved_at or now,
                next_notify_at=None,
            )
            for alert in live
            if alert.rule_id not in enabled
        ]
        await store.update_alerts(conn, ended)

    async def _left_on(
        self,
        conn: AsyncConnection,
        fleet: Fleet,
        windows: list[WindowRecord],
        channels: set[int],
        now: datetime,
    ) -> int:
        """The "left on" report of each window that has opened since its last one."""
        queued = 0
        for window in windows:
            opening = last_opening(window, now)
            if opening is None or (window.last_report_at and window.last_report_at >= opening):
                continue
            if not await config_store.mark_window_reported(conn, window.id, opening):
                continue
            on = [m for m in fleet.selected(window.selector) if m.status == "online"]
            if not on:
                continue
            message = messages.left_on(window, sorted(on, key=lambda m: (m.room or "", m.hostname)))
            for channel_id in window.channels:
                if channel_id in channels:
                    await delivery_store.enqueue(
                        conn, channel_id=channel_id, message=message, now=now
                    )
                    queued += 1
        return queued

    # --- what the API shows ----------------------------------------------------------

    async def list_alerts(
        self, *, state: str | None = None, limit: int = 100, before: int | None = None
    ) -> list[AlertOut]:
        states = {
            None: None,
            "active": ("pending", "firing"),
        }.get(state, (state,) if state else None)
        async with self.db.connect() as conn:
            found = await store.list_alerts(conn, states=states, limit=limit, before_id=before)
            return await _shown(conn, found)

    async def count_unacknowledged(self) -> int:
        """Firing alerts nobody has acknowledged: the navigation's count."""
        async with self.db.connect() as conn:
            return await store.count_unacknowledged(conn)

    async def get_alert(self, alert_id: int) -> AlertOut:
        async with self.db.connect() as conn:
            found = await store.get_alert(conn, alert_id)
            if found is None:
                raise NotFound(f"no alert {alert_id}")
            return (await _shown(conn, [found]))[0]

    async def acknowledge(self, alert_id: int, *, actor: Actor) -> AlertOut:
        """Someone is on it: no more repeats (a change is still told)."""
        async with self.db.begin() as conn:
            if not await store.acknowledge(conn, alert_id, by=actor.name, at=utcnow()):
                raise NotFound(f"no alert {alert_id}")
            await record(conn, actor, "alert.ack", target=str(alert_id))
            found = await store.get_alert(conn, alert_id)
            assert found is not None  # acknowledged in this transaction
            shown = (await _shown(conn, [found]))[0]
        self.bus.publish(ALERT_TOPIC, {"acked": alert_id})
        return shown


def _touched(tracker: RuleTracker) -> bool:
    return any(i.changed for i in tracker.incidents)


def _silencer(
    rule: RuleRecord, fleet: Fleet, silences: list[SilenceRecord]
) -> Callable[[str], bool]:
    mine = [s for s in silences if s.rule_id in (None, rule.id)]

    def silenced(subject: str) -> bool:
        machine = fleet.machines.get(machine_of(subject))
        return machine is not None and any(selects(s.selector, machine) for s in mine)

    return silenced


def _new_alert(rule: RuleRecord, incident: Incident) -> NewAlert:
    return NewAlert(
        rule_id=rule.id,
        group_key=incident.group_key,
        state=incident.state,
        subjects=list(incident.subjects),
        summary=incident.summary,
        started_at=incident.started_at,
        next_notify_at=incident.next_notify_at,
    )


def _alert_record(rule: RuleRecord, incident: Incident) -> AlertRecord:
    assert incident.id is not None
    return AlertRecord(
        id=incident.id,
        rule_id=rule.id,
        group_key=incident.group_key,
        state=incident.state,
        subjects=list(incident.subjects),
        summary=incident.summary,
        started_at=incident.started_at,
        resolved_at=incident.resolved_at,
        acked_at=None,
        acked_by=None,
        next_notify_at=incident.next_notify_at,
        last_notified_at=incident.last_notified_at,
        notified={"firing": list(incident.told)},
    )


async def _shown(conn: AsyncConnection, found: list[AlertRecord]) -> list[AlertOut]:
    """Alerts as the API shows them: with their rule, the subjects firing now, and
    whether a silence covers all of those."""
    rules = await store.rule_names(conn)
    subjects = await store.subjects_of(conn, [a.id for a in found])
    firing: defaultdict[int, list[str]] = defaultdict(list)
    for subject in subjects:
        if subject.state == FIRING and subject.alert_id is not None:
            firing[subject.alert_id].append(subject.subject)
    now = utcnow()
    silences = await config_store.silences(conn, active_at=now)
    wanted = {machine_of(s) for keys in firing.values() for s in keys}
    machines = await facts_store.machines_by_id(conn, wanted) if silences and wanted else {}
    shown = []
    for alert in found:
        name, kind, severity = rules.get(alert.rule_id, ("?", "machine_offline", "warning"))
        now_firing = firing.get(alert.id, [])
        shown.append(
            AlertOut(
                id=alert.id,
                rule=name,
                kind=RuleKind(kind),
                severity=Severity(severity),
                state=AlertState(alert.state),
                group=alert.group_key,
                subjects=list(alert.subjects),
                firing=now_firing,
                summary=alert.summary,
                started_at=alert.started_at,
                resolved_at=alert.resolved_at,
                acked_at=alert.acked_at,
                acked_by=alert.acked_by,
                silenced=bool(now_firing)
                and all(
                    _covered(machines.get(machine_of(s)), alert.rule_id, silences)
                    for s in now_firing
                ),
                last_notified_at=alert.last_notified_at,
            )
        )
    return shown


def _covered(machine: MachineFacts | None, rule_id: int, silences: list[SilenceRecord]) -> bool:
    return machine is not None and any(
        s.rule_id in (None, rule_id) and selects(s.selector, machine) for s in silences
    )
