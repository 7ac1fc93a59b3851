"""What the supervisor watches while one run of a program lasts: its ready line, its
probe, its cost, its memory rule and its scheduled restart.

One :class:`RunWatch` per run (a start, or an adoption): what it holds (the plugin's
connection, the probe's misses, the CPU baseline) belongs to that process and goes
with it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from wcms.agent.platform.base import ConsoleUnavailable, ProgramProcess
from wcms.agent.plugins import GamePlugin, PluginError, plugin_for
from wcms.agent.supervisor.console import ConsoleLog, LineScanner
from wcms.agent.supervisor.health import HealthVerdict, HealthWatch
from wcms.agent.supervisor.meter import Pace, TreeMeter, Usage
from wcms.agent.supervisor.schedule import next_fire
from wcms.agent.supervisor.stopping import ProgramConsole
from wcms.protocol.programs import ProgramSpec, ProgramState, Reason, parse_probe_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """What one look found."""

    ready: bool = False
    # An intended stop it calls for: hang, memory or scheduled_restart.
    intent: Reason | None = None
    detail: str | None = None
    # Whether the scheduled restart's countdown was announced (no announcement then).
    counted_down: bool = False
    # What the server sees changed (the probe's answer): worth a report now.
    changed: bool = False


class RunWatch:
    def __init__(
        self,
        spec: ProgramSpec,
        process: ProgramProcess,
        log_file: ConsoleLog,
        *,
        pace: Pace,
        ready_from: int | None,
    ) -> None:
        """``ready_from``: where in the console its ready line may appear (None: the
        run is adopted, or has no ready line)."""
        self.spec = spec
        self.plugin = _plugin(spec)
        self.health = (
            HealthWatch(spec.probe, self.plugin)
            if spec.probe is not None and self.plugin is not None
            else None
        )
        self.console = ProgramConsole(process, self.plugin)
        self.usage: Usage | None = None
        self._pace = pace
        self._meter = TreeMeter(process.pid)
        self._measured_at: float | None = None
        self._ready = re.compile(spec.ready_line) if spec.ready_line else None
        self._scanner = (
            LineScanner(log_file, offset=ready_from)
            if self._ready is not None and ready_from is not None
            else None
        )
        self._fire = _next_fire(spec, datetime.now(UTC))
        self._announced: set[int] = set()

    @property
    def ready_at_once(self) -> bool:
        """Nothing tells when it is ready: it is as soon as it runs."""
        return self._scanner is None and self.health is None

    def next_look_in(self, interval: float) -> float:
        """When to look again: after ``interval`` (the watch's pace), or sooner when
        the probe is due sooner: a busy machine slows the watch, never the probe."""
        if self.health is None:
            return interval
        return min(interval, self.health.due_in())

    @property
    def scanning(self) -> bool:
        return self._scanner is not None

    @property
    def verdict(self) -> HealthVerdict | None:
        return self.health.last if self.health is not None else None

    async def check(self, state: ProgramState) -> Finding:
        """Look once: readiness while ``starting``; the probe when due; the memory
        rule and the schedule once ``running``."""
        ready = False
        if state is ProgramState.STARTING and self._scanner is not None and self._ready:
            ready = self._scanner.scan(self._ready)
            if ready:
                self._scanner = None
        await self._measure()
        changed = False
        if self.health is not None and self.health.due():
            before = self.health.last.ok
            verdict = await self.health.probe_once()
            changed = verdict.ok != before
            if verdict.hung:
                detail = f"{verdict.failures} probes missed in a row: {verdict.detail}"
                return Finding(ready=ready, intent=Reason.HANG, detail=detail, changed=True)
            ready = ready or (state is ProgramState.STARTING and verdict.ready)
        if state is ProgramState.RUNNING or ready:
            finding = self._memory_rule() or await self._schedule()
            if finding is not None:
                return Finding(
                    ready=ready,
                    intent=finding.intent,
                    detail=finding.detail,
                    counted_down=finding.counted_down,
                    changed=changed,
                )
        return Finding(ready=ready, changed=changed)

    async def close(self) -> None:
        if self.health is not None:
            try:
                await self.health.close()
            except (PluginError, OSError) as exc:
                log.warning("%s: closing its plugin: %s", self.spec.name, exc)

    async def _measure(self) -> None:
        now = time.monotonic()
        if self._measured_at is not None and now - self._measured_at < self._pace.measure_s:
            return
        self._measured_at = now
        self.usage = await asyncio.to_thread(self._meter.measure)

    def _memory_rule(self) -> Finding | None:
        """Over its memory limit and nobody online (a probe said 0 players)."""
        limit = self.spec.memory_limit_bytes
        verdict = self.verdict
        if limit is None or self.usage is None or verdict is None:
            return None
        if self.usage.rss_bytes <= limit or verdict.players != 0:
            return None
        detail = f"RSS {self.usage.rss_bytes} bytes over its limit of {limit}, nobody online"
        return Finding(intent=Reason.MEMORY, detail=detail)

    async def _schedule(self) -> Finding | None:
        """At its cron time a scheduled restart; before it, the countdown."""
        if self._fire is None or self.spec.schedule is None:
            return None
        now = datetime.now(UTC)
        left_min = (self._fire - now).total_seconds() / 60
        if left_min <= 0:
            counted_down = bool(self._announced)
            self._fire = _next_fire(self.spec, now)
            self._announced.clear()
            detail = f"scheduled ({self.spec.schedule})"
            return Finding(
                intent=Reason.SCHEDULED_RESTART, detail=detail, counted_down=counted_down
            )
        stop = self.spec.stop
        due = {m for m in stop.countdown_min if m not in self._announced and left_min <= m}
        if due and stop.announce:
            self._announced |= due
            text = stop.announce.replace("{minutes}", str(min(due)))
            try:
                await self.console.announce(text)
            except (ConsoleUnavailable, PluginError, TimeoutError, OSError) as exc:
                log.warning("%s: the restart countdown failed: %s", self.spec.name, exc)
        return None


def _plugin(spec: ProgramSpec) -> GamePlugin | None:
    if spec.probe is None:
        return None
    url = parse_probe_url(spec.probe.url)
    return plugin_for(url, timeout_s=spec.probe.timeout_s, preset=spec.preset)


def _next_fire(spec: ProgramSpec, after: datetime) -> datetime | None:
    if spec.schedule is None:
        return None
    try:
        return next_fire(spec.schedule, after)
    except ValueError as exc:
        log.error("%s: its schedule is ignored: %s", spec.name, exc)
        return None
