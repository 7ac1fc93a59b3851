"""Live machine status for watchers, coalesced: at most one update per machine a second.

Heartbeats arrive by the thousand each second; a watcher needs the latest figures, not
every one of them. The feed keeps only the newest report per machine and publishes them
together, once per interval, as one ``status`` event. With no one watching it keeps
nothing at all.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from wcms.protocol import StatusReport
from wcms.server.bus.base import Bus

TOPIC = "status"


class StatusFeed:
    def __init__(self, bus: Bus, *, interval: float = 1.0) -> None:
        self._bus = bus
        self._interval = interval
        self._latest: dict[str, StatusReport] = {}
        self._stopping = asyncio.Event()

    def offer(self, machine_id: str, report: StatusReport) -> None:
        """Note a machine's newest report; costs one dict lookup when no one watches."""
        if self._bus.wants(TOPIC):
            self._latest[machine_id] = report

    def flush(self) -> None:
        if not self._latest:
            return
        latest, self._latest = self._latest, {}
        at = datetime.now(UTC).isoformat()
        self._bus.publish(TOPIC, {"at": at, "machines": {m: summary(r) for m, r in latest.items()}})

    async def run(self) -> None:
        """Publish every ``interval`` seconds until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval)
            except TimeoutError:
                self.flush()

    def stop(self) -> None:
        self._stopping.set()


def summary(report: StatusReport) -> dict[str, Any]:
    """The figures a seat map and a machine page show."""
    disk = max((d.percent for d in report.disks), default=None)
    return {
        "cpu": round(report.cpu_percent, 1),
        "ram": round(report.ram_percent, 1),
        "disk": round(disk, 1) if disk is not None else None,
        "users": report.users[:4],
        "uptime_s": report.uptime_s,
        "processes": report.process_count,
    }
