"""``metric``: CPU, RAM or the fullest disk of an online machine above a percentage, or
a running program's resident memory above so many MiB, as last reported. How long it
must stay above is the rule's "for"."""

from __future__ import annotations

from typing import Any

from wcms.server.services.alerts.conditions.base import Condition, Observation
from wcms.server.services.alerts.fleet import Fleet
from wcms.server.store.alert_config import RuleRecord
from wcms.server.store.alert_facts import MachineFacts

MIB = 1024 * 1024
_NAMES = {"cpu": "CPU", "ram": "RAM"}


async def observe(
    rule: RuleRecord, fleet: Fleet, machines: list[MachineFacts]
) -> list[Observation]:
    metric, above = str(rule.params.get("metric")), float(rule.params.get("above") or 0)
    if metric == "program_rss":
        return await _programs(fleet, machines, above)
    reports = await fleet.reports()
    found = []
    for machine in machines:
        report = reports.get(machine.id)
        if machine.status != "online" or report is None:
            continue
        measured = _measure(metric, report)
        if measured is not None and measured[0] > above:
            value, what = measured
            line = f"{machine.hostname}: {what} {value:.0f}% (above {above:g}%)"
            found.append(Observation(machine.id, machine, line))
    return found


# Free-form: the stored JSON of a StatusReport.
def _measure(metric: str, report: dict[str, Any]) -> tuple[float, str] | None:
    if metric in _NAMES:
        value = report.get(f"{metric}_percent")
        return (float(value), _NAMES[metric]) if value is not None else None
    disks = [disk for disk in report.get("disks") or [] if disk.get("percent") is not None]
    if not disks:
        return None
    fullest = max(disks, key=lambda disk: float(disk["percent"]))
    return float(fullest["percent"]), f"disk {fullest.get('mount', '')}".rstrip()


async def _programs(fleet: Fleet, machines: list[MachineFacts], above: float) -> list[Observation]:
    selected = {machine.id: machine for machine in machines}
    found = []
    for program in await fleet.programs():
        machine = selected.get(program.machine_id)
        if machine is None or program.state != "running" or program.rss_bytes is None:
            continue
        mib = program.rss_bytes / MIB
        if mib > above:
            line = f"{machine.hostname}/{program.name}: memory {mib:,.0f} MiB (above {above:g})"
            found.append(Observation(f"{machine.id}/{program.name}", machine, line))
    return found


CONDITION = Condition(observe, one="over its threshold", many="over their threshold")
