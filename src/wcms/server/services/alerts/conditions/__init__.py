"""What each kind of rule watches. A kind is one module here with an ``observe``
coroutine: given the rule, the fleet and the machines the rule selects, the subjects
that are bad now, each with a line saying how. Everything else (pending periods,
grouping, flapping, silences, windows, messages) is the engine's, the same for every
kind; a new kind is a new module and a line in :data:`CONDITIONS`."""

from __future__ import annotations

from wcms.protocol.alerts import RuleKind
from wcms.server.services.alerts.conditions import (
    agent_conflict,
    command_failed,
    machine_offline,
    metric,
    program_down,
)
from wcms.server.services.alerts.conditions.base import Condition, Observation

CONDITIONS: dict[RuleKind, Condition] = {
    RuleKind.MACHINE_OFFLINE: machine_offline.CONDITION,
    RuleKind.PROGRAM_DOWN: program_down.CONDITION,
    RuleKind.COMMAND_FAILED: command_failed.CONDITION,
    RuleKind.METRIC: metric.CONDITION,
    RuleKind.AGENT_CONFLICT: agent_conflict.CONDITION,
}

__all__ = ["CONDITIONS", "Condition", "Observation"]
