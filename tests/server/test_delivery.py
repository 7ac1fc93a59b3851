"""Delivery is acknowledged: a run pushed into a link that died unnoticed goes back to
the queue and is offered again, and its timeout counts from the agent's ``running``
report, not from its creation. In process, on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from tests.server.test_command_service import ADMIN, add_machines
from wcms.protocol import CommandCreate, RunEnvelope, RunState, RunUpdate
from wcms.server.core import Core
from wcms.server.services.links import AgentLink
from wcms.server.settings import Settings


class DeadLink(AgentLink):
    """A WebSocket whose peer vanished without a FIN: every send "succeeds" into the
    kernel's buffer and nothing ever comes back."""

    transport = "ws"

    def __init__(self, machine_id: str) -> None:
        super().__init__(machine_id, "dead-session")
        self.offered: list[int] = []

    @property
    def pushes(self) -> bool:
        return True

    async def offer(self, runs: Sequence[RunEnvelope]) -> bool:
        self.offered += [run.run_id for run in runs]
        return True

    async def cancel(self, run_id: int) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        self.closed = True


def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        admin_password="x" * 12,
        delivery_timeout=0.3,
        run_timeout_slack=0.2,
    )


async def state_of(core: Core, command_id: int) -> tuple[RunState, int]:
    run = (await core.commands.get(command_id)).runs[0]
    return run.state, run.id


async def until(core: Core, command_id: int, state: RunState, *, within: float) -> float:
    """Sweep until the command's run is in ``state``; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (await state_of(core, command_id))[0] != state:
        assert loop.time() - start < within, f"not {state} within {within} s"
        await core.sweeper.sweep()
        await asyncio.sleep(0.05)
    return loop.time() - start


def test_an_unacknowledged_run_is_offered_again_not_timed_out(tmp_path, database_url):
    async def go() -> tuple[list[int], RunState, list[int]]:
        core = Core(settings(tmp_path, database_url))
        await core.start()
        try:
            await add_machines(core, "m1")
            dead = DeadLink("m1")
            core.registry.put(dead)
            command_id = await core.commands.create(
                CommandCreate(
                    selector="m1", type="execute", payload={"command": "true"}, timeout_s=0.5
                ),
                actor=ADMIN,
            )
            assert (await state_of(core, command_id))[0] == RunState.DELIVERED
            # Far past creation + timeout + slack, never acknowledged: offered again
            # each time the acknowledgement is overdue, never timed out.
            for _ in range(3):
                before = len(dead.offered)
                while len(dead.offered) == before:
                    await core.sweeper.sweep()
                    await asyncio.sleep(0.05)
            assert (await state_of(core, command_id))[0] == RunState.DELIVERED
            offered = list(dead.offered)
            # The link is found dead; the machine reconnects later.
            core.registry.remove(dead)
            await until(core, command_id, RunState.QUEUED, within=5)
            await asyncio.sleep(1.0)  # longer than timeout + slack again
            await core.sweeper.sweep()
            waiting = (await state_of(core, command_id))[0]
            back = DeadLink("m1")
            core.registry.put(back)
            await core.commands.deliver_pending("m1")
            return offered, waiting, back.offered
        finally:
            await core.stop()

    offered, waiting, again = asyncio.run(go())
    assert len(offered) >= 4 and set(offered) == {offered[0]}
    assert waiting == RunState.QUEUED
    assert again == offered[:1]


def test_the_timeout_counts_from_the_running_report(tmp_path, database_url):
    async def go() -> tuple[RunState, float]:
        core = Core(settings(tmp_path, database_url))
        await core.start()
        try:
            await add_machines(core, "m1")
            core.registry.put(DeadLink("m1"))
            command_id = await core.commands.create(
                CommandCreate(
                    selector="m1", type="execute", payload={"command": "true"}, timeout_s=1
                ),
                actor=ADMIN,
            )
            _, run_id = await state_of(core, command_id)
            await asyncio.sleep(1.5)  # delivered long ago: timeout + slack from creation
            await core.commands.apply_update("m1", RunUpdate(run_id=run_id, state="running"))
            await core.sweeper.sweep()
            running = (await state_of(core, command_id))[0]
            took = await until(core, command_id, RunState.TIMED_OUT, within=5)
            return running, took
        finally:
            await core.stop()

    running, took = asyncio.run(go())
    assert running == RunState.RUNNING
    assert took >= 1.0  # its own timeout, counted from the report
