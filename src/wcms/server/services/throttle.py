"""Rate limits on logins: password guessing is slowed per address and per user name."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from wcms.server.errors import TooManyRequests

PER_ADDRESS = parse("20/minute")
PER_USERNAME = parse("10/minute")


class LoginThrottle:
    """Counts login attempts in a moving window; refuses past the limit."""

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, *, ip: str | None, username: str) -> None:
        """Count one attempt; raises TooManyRequests (with the wait) when over a limit."""
        checks = ((PER_ADDRESS, "ip", ip or "-"), (PER_USERNAME, "user", username.casefold()))
        for item, kind, key in checks:
            if not self._limiter.hit(item, "login", kind, key):
                reset = self._limiter.get_window_stats(item, "login", kind, key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise TooManyRequests(
                    f"too many login attempts; try again in {wait} seconds",
                    code="too_many_logins",
                    retry_after=wait,
                )
