"""The default bus: events reach the subscribers of this server process."""

from __future__ import annotations

from typing import Any

from wcms.server.bus.base import Bus, Event


class InProcessBus(Bus):
    """Fan-out inside one process: publishing is a loop over in-memory queues."""

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        if self._subscribers.get(topic):
            self.deliver(Event(topic, data))
