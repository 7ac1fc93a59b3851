"""The outbox: what is still to be confirmed by the server."""

from __future__ import annotations

import asyncio

import pytest

from wcms.agent.journal import Journal
from wcms.agent.outbox import Outbox
from wcms.protocol import RunResult, RunState, RunUpdate

from .harness import make_envelope

pytestmark = pytest.mark.anyio


def update(state: RunState, run_id: int = 1) -> RunUpdate:
    result = None if state is RunState.RUNNING else RunResult(exit_code=0)
    return RunUpdate(run_id=run_id, attempt=1, state=state, result=result)


async def test_a_final_update_replaces_running_but_not_the_reverse(journal: Journal) -> None:
    outbox = Outbox(journal)
    outbox.put(update(RunState.RUNNING))
    outbox.put(update(RunState.SUCCEEDED))
    outbox.put(update(RunState.RUNNING))
    assert [u.state for u in outbox.pending()] == [RunState.SUCCEEDED]


async def test_an_ack_for_an_older_state_keeps_the_newer_update(journal: Journal) -> None:
    outbox = Outbox(journal)
    outbox.put(update(RunState.RUNNING))
    outbox.put(update(RunState.FAILED))
    outbox.ack(1, 1, state=RunState.RUNNING)
    assert [u.state for u in outbox.pending()] == [RunState.FAILED]


async def test_a_final_ack_is_recorded_in_the_journal(journal: Journal) -> None:
    journal.start(make_envelope("true", run_id=1))
    journal.finish(1, 1, state=RunState.SUCCEEDED, result=RunResult(exit_code=0))
    outbox = Outbox(journal)
    outbox.put(update(RunState.SUCCEEDED))
    outbox.ack(1, 1, state=RunState.SUCCEEDED)
    assert outbox.pending() == []
    entry = journal.lookup(1, 1)
    assert entry is not None and entry.acked


async def test_waiters_wake_when_something_is_queued(journal: Journal) -> None:
    outbox = Outbox(journal)
    seen = outbox.version
    waiter = asyncio.create_task(outbox.wait_for_change(seen))
    await asyncio.sleep(0)
    assert not waiter.done()
    outbox.put(update(RunState.RUNNING))
    assert await asyncio.wait_for(waiter, 1) > seen


async def test_queuing_again_after_an_ack_is_a_new_version(journal: Journal) -> None:
    outbox = Outbox(journal)
    outbox.put(update(RunState.SUCCEEDED))
    (first,) = outbox.queued()
    outbox.ack(1, 1, state=RunState.SUCCEEDED)
    outbox.put(update(RunState.SUCCEEDED))
    (second,) = outbox.queued()
    assert second.version > first.version


async def test_a_run_that_ends_quickly_reports_only_its_end(journal: Journal) -> None:
    outbox = Outbox(journal, running_delay=0.2)
    outbox.put(update(RunState.RUNNING))
    assert outbox.queued() == []  # held back: the run may end at once
    assert [u.state for u in outbox.pending()] == [RunState.RUNNING]  # a goodbye sends it
    outbox.put(update(RunState.SUCCEEDED))
    assert [q.update.state for q in outbox.queued()] == [RunState.SUCCEEDED]
    await asyncio.sleep(0.3)
    assert [q.update.state for q in outbox.queued()] == [RunState.SUCCEEDED]


async def test_a_longer_run_reports_running_after_the_delay(journal: Journal) -> None:
    outbox = Outbox(journal, running_delay=0.1)
    outbox.put(update(RunState.RUNNING))
    assert outbox.queued() == []
    seen = outbox.version  # what a sender that just found nothing to send waits past
    assert await asyncio.wait_for(outbox.wait_for_change(seen), 2) > seen
    (queued,) = outbox.queued()
    assert queued.update.state is RunState.RUNNING
