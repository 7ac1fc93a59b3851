"""A run manager over a real journal (power only ever recorded), and envelopes."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from wcms.agent.actions import RecordingPowerBackend, default_actions
from wcms.agent.journal import Journal
from wcms.agent.outbox import Outbox
from wcms.agent.platform import current_platform
from wcms.agent.runner import RunManager
from wcms.protocol import TERMINAL_STATES, RunEnvelope, RunUpdate

_run_ids = itertools.count(1000)


def make_envelope(
    command: str | None = None,
    *,
    run_id: int | None = None,
    attempt: int = 1,
    type: str = "execute",
    payload: dict[str, Any] | None = None,
    timeout_s: float = 10.0,
    expires_at: datetime | None = None,
) -> RunEnvelope:
    if payload is None:
        payload = {"command": command} if command is not None else {}
    return RunEnvelope(
        run_id=run_id if run_id is not None else next(_run_ids),
        attempt=attempt,
        command_id=1,
        type=type,
        payload=payload,
        timeout_s=timeout_s,
        expires_at=expires_at,
    )


class Harness:
    """A run manager over a real journal, and ways to watch its reports."""

    def __init__(self, journal: Journal, power_log: Path) -> None:
        self.journal = journal
        self.outbox = Outbox(journal)
        power = RecordingPowerBackend(power_log, machine_id="test-machine")
        actions = default_actions(current_platform(), max_output_bytes=64 * 1024, power=power)
        self.runner = RunManager(journal, self.outbox, actions=actions)

    def update(self, run_id: int, attempt: int = 1) -> RunUpdate | None:
        for update in self.outbox.pending():
            if (update.run_id, update.attempt) == (run_id, attempt):
                return update
        return None

    async def final(self, run_id: int, attempt: int = 1, timeout: float = 10.0) -> RunUpdate:
        """Wait for the run's final update."""
        async with asyncio.timeout(timeout):
            while True:
                version = self.outbox.version
                update = self.update(run_id, attempt)
                if update is not None and update.state in TERMINAL_STATES:
                    return update
                await self.outbox.wait_for_change(version)


def is_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def wait_until_gone(pid: int, timeout: float = 2.0) -> None:
    """Wait for a killed process to die (the kernel takes a moment)."""
    async with asyncio.timeout(timeout):
        while not is_gone(pid):
            await asyncio.sleep(0.01)
