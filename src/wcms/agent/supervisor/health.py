"""Watching one program's liveness probe: readiness, and hangs.

A game that misses one or two probes (a map change, a save, a garbage collection)
is not hung: only ``probe.failures`` misses in a row are, and only once the start
grace is over (a big world takes minutes to load). One answer makes the program ready
and forgives the misses before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from wcms.agent.plugins.base import GamePlugin, ProbeResult
from wcms.protocol.programs import Probe

log = logging.getLogger(__name__)

# Never probe a game more often than this, whatever asks.
MIN_PROBE_GAP_S = 1.0
# A miss is tried once more after this: one lost datagram or reset connection is not
# worth a miss.
RETRY_DELAY_S = 0.5
# Past its own timeout, how long a plugin's probe may take before it counts as a miss.
PROBE_SLACK_S = 1.0


@dataclass(frozen=True)
class HealthVerdict:
    ok: bool | None  # None: not probed since the start
    ready: bool  # a probe has answered since the start
    hung: bool  # ``failures`` misses in a row after the grace
    players: int | None
    max_players: int | None
    failures: int  # misses in a row that count (none during the grace)
    detail: str | None


_UNKNOWN = HealthVerdict(
    ok=None, ready=False, hung=False, players=None, max_players=None, failures=0, detail=None
)


class HealthWatch:
    """One program's probe and what its answers mean. The supervisor calls
    :meth:`started` at each start, and :meth:`probe_once` whenever :meth:`due`."""

    def __init__(
        self,
        probe: Probe,
        plugin: GamePlugin,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_delay_s: float = RETRY_DELAY_S,
    ) -> None:
        self.probe = probe
        self.plugin = plugin
        self._clock = clock
        self._retry_delay_s = retry_delay_s
        self._started_at = clock()
        self._probed_at: float | None = None
        self._last = _UNKNOWN

    @property
    def last(self) -> HealthVerdict:
        return self._last

    @property
    def in_grace(self) -> bool:
        return self._clock() - self._started_at < self.probe.start_grace_s

    def started(self) -> None:
        """The program (re)started: its misses are forgotten and its grace begins."""
        self._started_at = self._clock()
        self._probed_at = None
        self._last = _UNKNOWN

    def due(self) -> bool:
        return self.due_in() <= 0

    def due_in(self) -> float:
        """Seconds until the next probe is due (0: now)."""
        if self._probed_at is None:
            return 0.0
        gap = max(self.probe.interval_s, MIN_PROBE_GAP_S)
        return max(gap - (self._clock() - self._probed_at), 0.0)

    async def probe_once(self) -> HealthVerdict:
        """Probe now, and judge.

        1. Within ``MIN_PROBE_GAP_S`` of the last probe, the last verdict stands.
        2. A miss is tried once more after a short delay.
        3. A success resets the misses and makes the program ready; a miss after the
           grace counts, and ``probe.failures`` of them in a row is a hang.
        """
        now = self._clock()
        if self._probed_at is not None and now - self._probed_at < MIN_PROBE_GAP_S:
            return self._last
        self._probed_at = now
        result = await self._probe()
        if not result.ok:
            await asyncio.sleep(self._retry_delay_s)
            result = await self._probe()
        self._last = self._judge(result)
        return self._last

    async def close(self) -> None:
        await self.plugin.close()

    async def _probe(self) -> ProbeResult:
        """The plugin's probe, held to its timeout even if the plugin overruns it, and
        a miss even if the plugin breaks its promise not to raise."""
        try:
            bound = max(self.probe.timeout_s, self.plugin.timeout_s) + PROBE_SLACK_S
            async with asyncio.timeout(bound):
                return await self.plugin.probe()
        except Exception as exc:
            reason = self.plugin.reason(exc)
            log.warning("the probe of %s failed: %s", self.plugin.where, reason)
            return ProbeResult(ok=False, detail=reason)

    def _judge(self, result: ProbeResult) -> HealthVerdict:
        if result.ok:
            return HealthVerdict(
                ok=True,
                ready=True,
                hung=False,
                players=result.players,
                max_players=result.max_players,
                failures=0,
                detail=result.detail,
            )
        failures = self._last.failures if self.in_grace else self._last.failures + 1
        return HealthVerdict(
            ok=False,
            ready=self._last.ready,
            hung=failures >= self.probe.failures,
            players=None,
            max_players=None,
            failures=failures,
            detail=result.detail,
        )
