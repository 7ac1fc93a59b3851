"""The alert engine: evaluates every rule against the fleet's state, keeps each
subject's state, groups subjects into alerts and queues their messages."""

from __future__ import annotations

from wcms.server.bus import Bus
from wcms.server.settings import Settings
from wcms.server.store.engine import Database
from wcms.server.telemetry import Telemetry


class AlertEngine:
    def __init__(
        self, db: Database, settings: Settings, *, bus: Bus, telemetry: Telemetry, holder: str
    ) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.telemetry = telemetry
        self.holder = holder

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def alive(self) -> bool:
        return True
