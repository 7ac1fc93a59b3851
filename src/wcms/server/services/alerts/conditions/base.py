"""What a condition is: the subjects it finds bad, and how a message names them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from wcms.server.services.alerts.fleet import Fleet
from wcms.server.store.alert_config import RuleRecord
from wcms.server.store.alert_facts import MachineFacts


@dataclass(frozen=True, slots=True)
class Observation:
    """A subject that is bad now."""

    subject: str  # a machine id, MACHINE/PROGRAM or MACHINE/run:ID
    machine: MachineFacts
    line: str  # what a message says of it, e.g. "lab-01: offline (connection lost)"
    # When its trouble began, where the fleet knows it (a machine's offline time, a
    # run's end): a window open then keeps it quiet. Otherwise now.
    since: datetime | None = None


Observe = Callable[[RuleRecord, Fleet, list[MachineFacts]], Awaitable[list[Observation]]]


@dataclass(frozen=True, slots=True)
class Condition:
    observe: Observe
    # What a message calls one bad subject and several ("machine offline", ...).
    one: str
    many: str
    # An event, not a state: told once, never resolved (a failed command run).
    momentary: bool = False
