"""Alerting: what is watched (rules) and where it is told (channels), the engine that
turns the fleet's state into alerts, and the outbox that delivers their messages."""

from wcms.server.services.alerts.config import AlertConfig
from wcms.server.services.alerts.engine import AlertEngine
from wcms.server.services.alerts.outbox import Outbox

__all__ = ["AlertConfig", "AlertEngine", "Outbox"]
