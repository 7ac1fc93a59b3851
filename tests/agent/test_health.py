"""Health watching (grace, misses in a row, readiness, rate limit) and restart schedules."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.fakegame import FakeGame
from wcms.agent.plugins import GamePlugin, ProbeResult, plugin_for
from wcms.agent.supervisor.health import HealthWatch
from wcms.agent.supervisor.schedule import check_cron, next_fire
from wcms.protocol.programs import Probe, parse_probe_url

pytestmark = pytest.mark.anyio

UP = ProbeResult(ok=True, players=1, max_players=8, detail="up")
DOWN = ProbeResult(ok=False, detail="no answer")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Scripted(GamePlugin):
    """A game whose answers the test decides, one per probe."""

    scheme = "tcp"

    def __init__(self, *answers: ProbeResult) -> None:
        super().__init__(parse_probe_url("tcp://127.0.0.1:1"), timeout_s=1)
        self.answers = list(answers)
        self.calls = 0
        self.closed = False

    async def probe(self) -> ProbeResult:
        self.calls += 1
        return self.answers.pop(0) if self.answers else DOWN

    async def close(self) -> None:
        self.closed = True


class Broken(GamePlugin):
    scheme = "tcp"

    async def probe(self) -> ProbeResult:
        raise RuntimeError("a bug")


def watch(plugin: GamePlugin, clock: Clock, *, grace: float = 60, failures: int = 3) -> HealthWatch:
    probe = Probe(url="tcp://127.0.0.1:1", interval_s=5, start_grace_s=grace, failures=failures)
    return HealthWatch(probe, plugin, clock=clock, retry_delay_s=0)


async def probes(health: HealthWatch, clock: Clock, count: int) -> list[tuple[int, bool]]:
    """``count`` probes, one interval apart: (failures, hung) after each."""
    seen = []
    for _ in range(count):
        verdict = await health.probe_once()
        seen.append((verdict.failures, verdict.hung))
        clock.advance(5)
    return seen


async def test_misses_during_the_grace_do_not_count() -> None:
    clock = Clock()
    health = watch(Scripted(), clock, grace=60)
    assert await probes(health, clock, 5) == [(0, False)] * 5
    assert health.last.ok is False and not health.last.ready


async def test_k_misses_in_a_row_after_the_grace_are_a_hang() -> None:
    clock = Clock()
    health = watch(Scripted(), clock, grace=10, failures=3)
    clock.advance(10)
    assert await probes(health, clock, 4) == [(1, False), (2, False), (3, True), (4, True)]
    assert health.last.detail == "no answer"


async def test_one_answer_forgives_the_misses_before_it() -> None:
    clock = Clock()
    # Each probe tries twice: a miss is two DOWNs.
    plugin = Scripted(DOWN, DOWN, DOWN, DOWN, UP, DOWN, DOWN, DOWN, DOWN, DOWN, DOWN)
    health = watch(plugin, clock, grace=0, failures=3)
    assert await probes(health, clock, 5) == [
        (1, False),
        (2, False),
        (0, False),
        (1, False),
        (2, False),
    ]
    assert (await health.probe_once()).hung


async def test_readiness_comes_from_the_first_answer_even_in_the_grace() -> None:
    clock = Clock()
    health = watch(Scripted(DOWN, DOWN, UP), clock, grace=60)
    assert health.last.ok is None and not health.last.ready
    assert not (await health.probe_once()).ready
    clock.advance(5)
    verdict = await health.probe_once()
    assert (verdict.ok, verdict.ready, verdict.players, verdict.max_players) == (True, True, 1, 8)
    clock.advance(5)
    later = await health.probe_once()
    assert (later.ok, later.ready, later.failures) == (False, True, 0)


async def test_a_miss_is_tried_once_more_before_it_counts() -> None:
    clock = Clock()
    plugin = Scripted(DOWN, UP)
    health = watch(plugin, clock, grace=0)
    verdict = await health.probe_once()
    assert verdict.ok and verdict.failures == 0 and plugin.calls == 2


async def test_probes_are_due_each_interval_and_never_more_than_one_a_second() -> None:
    clock = Clock()
    plugin = Scripted(UP, UP, UP)
    health = watch(plugin, clock)
    assert health.due()
    first = await health.probe_once()
    assert not health.due()
    clock.advance(0.5)
    # Asked again too soon: the last verdict, and the game is not probed.
    assert await health.probe_once() is first and plugin.calls == 1
    clock.advance(4.4)
    assert not health.due()
    clock.advance(0.1)
    assert health.due()
    await health.probe_once()
    assert plugin.calls == 2


async def test_a_restart_starts_over() -> None:
    clock = Clock()
    plugin = Scripted()
    health = watch(plugin, clock, grace=0, failures=1)
    assert (await health.probe_once()).hung
    health.started()
    assert health.due()
    assert (health.last.ok, health.last.hung, health.last.failures) == (None, False, 0)
    await health.close()
    assert plugin.closed


async def test_a_plugin_that_raises_is_a_miss() -> None:
    clock = Clock()
    health = watch(Broken(parse_probe_url("tcp://127.0.0.1:1")), clock, grace=0)
    verdict = await health.probe_once()
    assert (verdict.ok, verdict.failures, verdict.detail) == (False, 1, "a bug")


@pytest.fixture
def game(tmp_path: Path) -> Iterator[FakeGame]:
    with FakeGame(tmp_path, protocols=["rcon"], args=["--minecraft", "--players", "2"]) as game:
        yield game


async def test_a_real_game_that_hangs_is_found_and_one_that_recovers_is_forgiven(
    game: FakeGame,
) -> None:
    clock = Clock()
    probe = Probe(url=game.url("rcon"), interval_s=1, timeout_s=0.3, start_grace_s=30, failures=2)
    plugin = plugin_for(parse_probe_url(probe.url), timeout_s=probe.timeout_s, preset="minecraft")
    health = HealthWatch(probe, plugin, clock=clock, retry_delay_s=0.05)
    health.started()
    verdict = await health.probe_once()
    assert (verdict.ok, verdict.ready, verdict.players) == (True, True, 2)
    clock.advance(30)
    game.console("hang")
    await asyncio.sleep(0.2)
    seen = []
    for _ in range(2):
        clock.advance(1)
        seen.append(await health.probe_once())
    assert [(v.ok, v.failures, v.hung) for v in seen] == [(False, 1, False), (False, 2, True)]
    assert "0.3s" in (seen[-1].detail or "")
    game.console("unhang")
    await asyncio.sleep(0.2)
    clock.advance(1)
    verdict = await health.probe_once()
    assert (verdict.ok, verdict.failures, verdict.hung) == (True, 0, False)
    await health.close()


# --- schedules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        (
            "0 5 * * *",
            datetime(2024, 3, 1, 4, 59, tzinfo=UTC),
            datetime(2024, 3, 1, 5, 0, tzinfo=UTC),
        ),
        # Strictly after: a fire time is not fired twice.
        (
            "0 5 * * *",
            datetime(2024, 3, 1, 5, 0, tzinfo=UTC),
            datetime(2024, 3, 2, 5, 0, tzinfo=UTC),
        ),
        (
            "*/15 * * * *",
            datetime(2024, 3, 1, 5, 1, 30, tzinfo=UTC),
            datetime(2024, 3, 1, 5, 15, tzinfo=UTC),
        ),
        ("0 4 * * 1", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 4, 4, 0, tzinfo=UTC)),
        ("@daily", datetime(2024, 12, 31, 23, 0, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_next_fire(cron: str, after: datetime, expected: datetime) -> None:
    fired = next_fire(cron, after)
    assert fired == expected and fired.utcoffset() == timedelta(0)


def test_next_fire_reads_cron_in_utc_whatever_the_zone_given() -> None:
    paris = timezone(timedelta(hours=1))
    fired = next_fire("0 5 * * *", datetime(2024, 3, 1, 5, 30, tzinfo=paris))
    assert fired == datetime(2024, 3, 1, 5, 0, tzinfo=UTC)
    assert fired.tzinfo is not None and fired.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("", "five fields"),
        ("every day", "five fields"),
        ("* * * * * *", "five fields"),
        ("61 * * * *", "Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("0 0 31 2 *", "Bad day-of-month"),
        ("0 0 * 13 *", "Bad month"),
        ("0 0 * * mon-", "Bad day-of-week"),
    ],
)
def test_a_bad_cron_expression_is_refused_saying_why(cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_cron(cron)
    with pytest.raises(ValueError, match=message):
        next_fire(cron, datetime(2024, 3, 1, tzinfo=UTC))


def test_a_good_cron_expression_passes_and_naive_times_are_refused() -> None:
    check_cron("30 4 * * 1-5")
    with pytest.raises(ValueError, match="aware"):
        next_fire("0 5 * * *", datetime(2024, 3, 1))
