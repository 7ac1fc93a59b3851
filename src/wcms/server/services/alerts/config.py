"""Channels, rules, silences and maintenance windows: created, changed and removed by
administrators, every change audited."""

from __future__ import annotations

from wcms.server.bus import Bus
from wcms.server.crypto import Sealer
from wcms.server.settings import Settings
from wcms.server.store.engine import Database


class AlertConfig:
    def __init__(self, db: Database, sealer: Sealer, settings: Settings, *, bus: Bus) -> None:
        self.db = db
        self.sealer = sealer
        self.settings = settings
        self.bus = bus
