"""Supervising programs: start, watch, restart and stop game servers."""

from wcms.agent.platform.base import ConsoleUnavailable
from wcms.agent.supervisor.meter import Pace
from wcms.agent.supervisor.supervisor import Supervisor

__all__ = ["ConsoleUnavailable", "Pace", "Supervisor"]
