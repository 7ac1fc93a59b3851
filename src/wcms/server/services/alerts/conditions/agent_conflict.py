"""``agent_conflict``: two agents claim one machine id (a cloned disk image)."""

from __future__ import annotations

from wcms.server.services.alerts.conditions.base import Condition, Observation
from wcms.server.services.alerts.fleet import Fleet
from wcms.server.store.alert_config import RuleRecord
from wcms.server.store.alert_facts import MachineFacts


async def observe(
    rule: RuleRecord, fleet: Fleet, machines: list[MachineFacts]
) -> list[Observation]:
    found = []
    for machine in machines:
        if machine.conflict:
            other = machine.conflict.get("hostname") or machine.conflict.get("ip")
            claimant = f" (also {other})" if other else ""
            line = f"{machine.hostname}: two agents claim machine id {machine.id}{claimant}"
            found.append(Observation(machine.id, machine, line))
    return found


CONDITION = Condition(observe, one="agent conflict", many="agent conflicts")
