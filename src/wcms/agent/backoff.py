"""Reconnect delays with full jitter, so that a fleet reconnecting after a server
restart spreads out instead of arriving at once."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Exponential backoff with full jitter: the n-th consecutive failure waits a
    uniformly random time in ``[0, min(maximum, initial * 2**n)]``."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._uniform = uniform
        self._failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        # The exponent is capped so that the float cannot overflow after many failures.
        ceiling = min(self.maximum, self.initial * 2 ** min(self._failures, 64))
        self._failures += 1
        return self._uniform(0, ceiling)

    def longest_delay(self) -> float:
        """A delay near the maximum, for conditions that will not clear soon (another
        agent holds this machine id); jittered over its upper half."""
        return self._uniform(self.maximum / 2, self.maximum)

    def reset(self) -> None:
        """Start over after a connection that worked."""
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures
