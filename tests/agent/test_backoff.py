"""Reconnect backoff: full jitter, capped, reset after success."""

from __future__ import annotations

from wcms.agent.backoff import Backoff


def ceilings(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_the_ceiling_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(0.5, 30, uniform=lambda low, high: high)
    assert ceilings(backoff, 9) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_delays_are_jittered_over_the_whole_range() -> None:
    backoff = Backoff(0.5, 30)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0 <= delay <= 30 for delay in delays)
    assert min(delays[10:]) < 10 < max(delays[10:])


def test_reset_starts_over() -> None:
    backoff = Backoff(1, 30, uniform=lambda low, high: high)
    ceilings(backoff, 5)
    backoff.reset()
    assert backoff.next_delay() == 1


def test_many_failures_do_not_overflow() -> None:
    backoff = Backoff(0.5, 30, uniform=lambda low, high: high)
    ceilings(backoff, 5000)
    assert backoff.next_delay() == 30


def test_the_longest_delay_stays_in_the_upper_half() -> None:
    backoff = Backoff(0.5, 30)
    assert all(15 <= backoff.longest_delay() <= 30 for _ in range(100))
