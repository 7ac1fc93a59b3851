"""The fleet as one evaluation of the alert rules sees it: read once, shared by every
rule, each part read only if a rule asks for it; and which machines a selector names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.server.store import alert_facts as store
from wcms.server.store.alert_facts import FailedRun, MachineFacts, ProgramFacts


class Fleet:
    """What the rules are evaluated against at ``now``, read over ``conn``."""

    def __init__(self, conn: AsyncConnection, now: datetime, machines: list[MachineFacts]) -> None:
        self.conn = conn
        self.now = now
        self.machines = {machine.id: machine for machine in machines}
        self._reports: dict[str, dict[str, Any]] | None = None
        self._programs: list[ProgramFacts] | None = None
        self._failed: tuple[datetime, list[FailedRun]] | None = None

    @classmethod
    async def read(cls, conn: AsyncConnection, now: datetime) -> Fleet:
        return cls(conn, now, await store.machine_facts(conn))

    def selected(self, selector: str) -> list[MachineFacts]:
        return [machine for machine in self.machines.values() if selects(selector, machine)]

    # Free-form: each report is the stored JSON of a StatusReport.
    async def reports(self) -> dict[str, dict[str, Any]]:
        if self._reports is None:
            self._reports = await store.latest_reports(self.conn)
        return self._reports

    async def programs(self) -> list[ProgramFacts]:
        if self._programs is None:
            self._programs = await store.program_facts(self.conn)
        return self._programs

    async def failed_runs(self, since: datetime) -> list[FailedRun]:
        """Runs that failed at or after ``since``; read once for the earliest asked."""
        if self._failed is None or since < self._failed[0]:
            self._failed = (since, await store.failed_runs(self.conn, since=since))
        return [run for run in self._failed[1] if run.finished_at >= since]


def selects(selector: str, machine: MachineFacts) -> bool:
    """Whether ``selector`` (as :func:`wcms.protocol.alerts.check_selector` keeps it:
    all, room:NAME, tag:NAME, machine ids and host names, joined by commas) names
    ``machine``. Unlike a command's, it is read afresh each time: a machine moved into
    a room is watched by that room's rules from then on."""
    for term in selector.split(","):
        term = term.strip()
        kind, colon, name = term.partition(":")
        if term == "all":
            return True
        if colon and kind == "room":
            if machine.room == name:
                return True
        elif colon and kind == "tag":
            if name in machine.tags:
                return True
        elif term in (machine.id, machine.hostname):
            return True
    return False


def machine_of(subject: str) -> str:
    """The machine a subject (a machine id, MACHINE/PROGRAM, MACHINE/run:ID) is of."""
    return subject.partition("/")[0]


def group_of(machine: MachineFacts | None) -> str:
    """What an alert groups subjects by: their machine's room."""
    if machine is None or not machine.room:
        return "all"
    return f"room:{machine.room}"
