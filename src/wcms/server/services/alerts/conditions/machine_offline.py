"""``machine_offline``: the machine's link was lost (it stopped answering, its
connection dropped and did not come back within the grace, or it did not reconnect
after a server restart). A machine shut down properly says goodbye first; that counts
only if the rule says ``include_shutdown``."""

from __future__ import annotations

from wcms.server.services.alerts.conditions.base import Condition, Observation
from wcms.server.services.alerts.fleet import Fleet
from wcms.server.store.alert_config import RuleRecord
from wcms.server.store.alert_facts import MachineFacts

# The presence reasons of a link that ended without a goodbye (services.presence).
LOST = {
    "connection_lost": "connection lost",
    "heartbeat_timeout": "stopped answering",
    "not_reconnected": "not back after a server restart",
}
# Offline because an admin said so: never news.
_ADMIN = frozenset({"revoked"})


async def observe(
    rule: RuleRecord, fleet: Fleet, machines: list[MachineFacts]
) -> list[Observation]:
    include_shutdown = bool(rule.params.get("include_shutdown"))
    found = []
    for machine in machines:
        reason = machine.status_reason
        if machine.status != "offline" or reason is None or reason in _ADMIN:
            continue
        if reason in LOST:
            how = LOST[reason]
        elif include_shutdown:
            how = f"shut down ({reason})"
        else:
            continue
        line = f"{machine.hostname}: offline, {how}"
        found.append(Observation(machine.id, machine, line, since=machine.status_changed_at))
    return found


CONDITION = Condition(observe, one="machine offline", many="machines offline")
