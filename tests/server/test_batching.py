"""The batcher behind the hot paths: concurrent calls share rounds, errors stay apart."""

from __future__ import annotations

import asyncio

import pytest

from wcms.server.errors import StorageError
from wcms.server.services.batching import Batcher


def test_calls_arriving_during_a_round_share_the_next_round():
    rounds: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        rounds.append(list(items))
        await asyncio.sleep(0.01)
        return [item * 2 for item in items]

    async def go() -> list[int]:
        batcher: Batcher[int, int] = Batcher(double)
        return await asyncio.gather(*(batcher.submit(n) for n in range(50)))

    assert asyncio.run(go()) == [n * 2 for n in range(50)]
    # The first call starts a round alone or with the calls made before it ran; the rest
    # wait and go together: far fewer rounds than calls.
    assert len(rounds) <= 2
    assert sorted(n for r in rounds for n in r) == list(range(50))


def test_an_error_result_reaches_only_its_caller():
    async def check(items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {n}") if n == 3 else n for n in items]

    async def go() -> list[object]:
        batcher: Batcher[int, int] = Batcher(check)
        return await asyncio.gather(*(batcher.submit(n) for n in range(5)), return_exceptions=True)

    results = asyncio.run(go())
    assert results[:3] == [0, 1, 2] and results[4] == 4
    assert isinstance(results[3], ValueError)


def test_a_failed_round_fails_its_callers_and_the_next_round_still_runs():
    calls = 0

    async def flaky(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StorageError("database went away")
        return items

    async def go() -> int:
        batcher: Batcher[int, int] = Batcher(flaky)
        with pytest.raises(StorageError, match="went away"):
            await batcher.submit(1)
        return await batcher.submit(2)

    assert asyncio.run(go()) == 2


def test_a_database_away_fails_the_whole_round_at_once():
    rounds: list[list[int]] = []

    async def away(items: list[int]) -> list[int]:
        rounds.append(list(items))
        raise StorageError("database went away")

    async def go() -> list[object]:
        batcher: Batcher[int, int] = Batcher(away)
        return await asyncio.gather(*(batcher.submit(n) for n in range(8)), return_exceptions=True)

    results = asyncio.run(go())
    assert all(isinstance(r, StorageError) for r in results)
    assert len(rounds) <= 2  # not retried item by item


def test_one_item_the_database_refuses_fails_only_its_caller():
    """A value no column holds fails the statement of the whole round: the round is
    halved until the bad item is alone, and every other caller gets its result."""

    async def store(items: list[int]) -> list[int]:
        if 13 in items:
            raise StorageError("the database refused a value", retryable=False)
        return items

    async def go() -> list[object]:
        batcher: Batcher[int, int] = Batcher(store)
        return await asyncio.gather(*(batcher.submit(n) for n in range(40)), return_exceptions=True)

    results = asyncio.run(go())
    assert isinstance(results[13], StorageError)
    assert [r for n, r in enumerate(results) if n != 13] == [n for n in range(40) if n != 13]


def test_a_caller_that_goes_away_does_not_break_the_round():
    async def slow(items: list[int]) -> list[int]:
        await asyncio.sleep(0.05)
        return items

    async def go() -> int:
        batcher: Batcher[int, int] = Batcher(slow)
        gone = asyncio.create_task(batcher.submit(1))
        stays = asyncio.create_task(batcher.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()
        return await stays

    assert asyncio.run(go()) == 2
