"""A heartbeat's measurements."""

from __future__ import annotations

import logging
import time

import psutil

from wcms.agent.collectors.inventory import physical_partitions
from wcms.protocol import DiskUsage, StatusReport

log = logging.getLogger(__name__)

MAX_DISKS = 256
MAX_USERS = 256


class StatusCollector:
    """Measures load cheaply: no per-process iteration, CPU measured between calls."""

    def __init__(self) -> None:
        # psutil's non-blocking CPU percentage compares with the previous call; this
        # first call starts the measurement (and returns a meaningless 0.0).
        psutil.cpu_percent(interval=None)

    def collect(self) -> StatusReport:
        """Blocking (stat calls on every disk): call it in a thread from async code."""
        memory = psutil.virtual_memory()
        return StatusReport(
            cpu_percent=min(max(psutil.cpu_percent(interval=None), 0.0), 100.0),
            ram_used=memory.total - memory.available,
            ram_total=memory.total,
            ram_percent=min(max(memory.percent, 0.0), 100.0),
            disks=self._disks(),
            users=sorted({user.name for user in psutil.users() if user.name})[:MAX_USERS],
            uptime_s=max(time.time() - psutil.boot_time(), 0.0),
            process_count=len(psutil.pids()),
        )

    def _disks(self) -> list[DiskUsage]:
        disks = []
        for mount, _fstype in physical_partitions()[:MAX_DISKS]:
            try:
                usage = psutil.disk_usage(mount)
            except OSError as exc:
                log.debug("skipping disk %s: %s", mount, exc)
                continue
            percent = min(max(usage.percent, 0.0), 100.0)
            disks.append(
                DiskUsage(mount=mount[:1024], total=usage.total, used=usage.used, percent=percent)
            )
        return disks
