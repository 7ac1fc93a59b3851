"""``command_failed``: a run of a command failed or timed out. An event, not a state:
each failed run is told once (runs of one command in one room together) and never
"resolved"; runs that ended before the rule existed, or more than an hour ago, are not
news."""

from __future__ import annotations

from datetime import timedelta

from wcms.server.services.alerts.conditions.base import Condition, Observation
from wcms.server.services.alerts.fleet import Fleet
from wcms.server.store.alert_config import RuleRecord
from wcms.server.store.alert_facts import FailedRun, MachineFacts

# How far back a failure is still news (and how long its record is kept, to tell it once).
HORIZON = timedelta(hours=1)


async def observe(
    rule: RuleRecord, fleet: Fleet, machines: list[MachineFacts]
) -> list[Observation]:
    selected = {machine.id: machine for machine in machines}
    since = max(rule.created_at, fleet.now - HORIZON)
    found = []
    for run in await fleet.failed_runs(since):
        machine = selected.get(run.machine_id)
        if machine is not None:
            line = f"{machine.hostname}: {_how(run)}"
            found.append(
                Observation(f"{run.machine_id}/run:{run.id}", machine, line, run.finished_at)
            )
    return found


def _how(run: FailedRun) -> str:
    text = f"{run.type} (command {run.command_id}) {run.state.replace('_', ' ')}"
    if run.exit_code is not None:
        text += f", exit code {run.exit_code}"
    if run.error:
        text += f": {run.error[:120]}"
    return text


CONDITION = Condition(observe, one="command failed", many="commands failed", momentary=True)
