"""``program_down``: a supervised program that should run is down: it crashed (and is
not back yet), hung, or crash-loops. A program stopped on purpose, from the dashboard
or in the game, is not down."""

from __future__ import annotations

from wcms.server.services.alerts.conditions.base import Condition, Observation
from wcms.server.services.alerts.fleet import Fleet
from wcms.server.store.alert_config import RuleRecord
from wcms.server.store.alert_facts import MachineFacts, ProgramFacts


async def observe(
    rule: RuleRecord, fleet: Fleet, machines: list[MachineFacts]
) -> list[Observation]:
    selected = {machine.id: machine for machine in machines}
    found = []
    for program in await fleet.programs():
        machine = selected.get(program.machine_id)
        if machine is None or not down(program):
            continue
        subject = f"{program.machine_id}/{program.name}"
        found.append(
            Observation(subject, machine, f"{machine.hostname}/{program.name}: {how(program)}")
        )
    return found


def down(program: ProgramFacts) -> bool:
    # "Troubled" from its crash, hang or loop until its next start reaches running.
    return program.desired == "running" and (program.troubled or program.state == "crash_loop")


def how(program: ProgramFacts) -> str:
    exit_ = program.last_exit or {}
    if program.state == "crash_loop":
        text = f"crash loop after {program.restarts} restarts"
    else:
        text = f"{program.state.replace('_', ' ')}"
    if exit_.get("code") is not None:
        text += f", exit code {exit_['code']}"
    elif exit_.get("signal"):
        text += f", signal {exit_['signal']}"
    return text


CONDITION = Condition(observe, one="program down", many="programs down")
