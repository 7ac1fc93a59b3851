"""Fixtures for the agent tests: a real journal file and a run manager harness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from wcms.agent.journal import Journal

from .harness import Harness
from .supervision import Supervisors


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def power_log(tmp_path: Path) -> Path:
    return tmp_path / "power.jsonl"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "journal.db")
    yield journal
    journal.close()


@pytest.fixture
async def harness(journal: Journal, power_log: Path) -> AsyncIterator[Harness]:
    harness = Harness(journal, power_log)
    yield harness
    await harness.runner.shutdown()


@pytest.fixture
async def supervisors(tmp_path: Path) -> AsyncIterator[Supervisors]:
    """Supervisors on one state directory; every program they started is killed after."""
    made = Supervisors(tmp_path / "state")
    yield made
    await made.cleanup()
