"""Live progress of running runs: output as it comes and how far an action got.

Unlike final updates (the outbox), progress is best effort: the newest report per run
waits here until a connected channel sends it, reports queued meanwhile are merged, and
a report lost with a connection is not sent again.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from wcms.protocol import RunProgress

Stream = Literal["stdout", "stderr"]
RunKey = tuple[int, int]


class Progress:
    """Where an action tells how it is getting on. This base ignores everything."""

    def output(self, text: str, *, stream: Stream = "stdout") -> None:
        """More output of the run."""

    def status(self, *, percent: float | None = None, note: str | None = None) -> None:
        """How far the run got (``percent``) and what it is doing now (``note``)."""


class ProgressQueue:
    """The newest unsent progress of each run."""

    def __init__(self) -> None:
        self._pending: dict[RunKey, RunProgress] = {}
        self._changed = asyncio.Event()

    def put(self, progress: RunProgress) -> None:
        key = (progress.run_id, progress.attempt)
        current = self._pending.get(key)
        self._pending[key] = progress if current is None else merge(current, progress)
        self._changed.set()

    def take(self) -> list[RunProgress]:
        """Everything pending, oldest run first; the queue is empty afterwards."""
        taken = list(self._pending.values())
        self._pending.clear()
        self._changed.clear()
        return taken

    async def wait(self) -> None:
        """Wait until something is pending."""
        while not self._pending:
            self._changed.clear()
            await self._changed.wait()


def merge(old: RunProgress, new: RunProgress) -> RunProgress:
    """One report saying what ``old`` then ``new`` said."""
    stdout, stdout_offset = _join(old.stdout, old.stdout_offset, new.stdout, new.stdout_offset)
    stderr, stderr_offset = _join(old.stderr, old.stderr_offset, new.stderr, new.stderr_offset)
    return new.model_copy(
        update={
            "stdout": stdout,
            "stdout_offset": stdout_offset,
            "stderr": stderr,
            "stderr_offset": stderr_offset,
            "percent": new.percent if new.percent is not None else old.percent,
            "note": new.note if new.note is not None else old.note,
        }
    )


def _join(old: str, old_offset: int, new: str, new_offset: int) -> tuple[str, int]:
    if not new:
        return old, old_offset
    if old and old_offset + len(old) == new_offset:
        return old + new, old_offset
    return new, new_offset


class RunProgressReporter(Progress):
    """Progress of one run attempt, into a :class:`ProgressQueue`, output capped at
    ``limit`` characters per stream (the final result has the same cap)."""

    def __init__(self, queue: ProgressQueue, run_id: int, attempt: int, *, limit: int) -> None:
        self._queue = queue
        self._run_id = run_id
        self._attempt = attempt
        self._limit = limit
        self._sent: dict[Stream, int] = {"stdout": 0, "stderr": 0}

    def output(self, text: str, *, stream: Stream = "stdout") -> None:
        offset = self._sent[stream]
        chunk = text[: max(self._limit - offset, 0)]
        if not chunk:
            return
        self._sent[stream] = offset + len(chunk)
        self._queue.put(
            RunProgress(
                run_id=self._run_id,
                attempt=self._attempt,
                **{stream: chunk, f"{stream}_offset": offset},
            )
        )

    def status(self, *, percent: float | None = None, note: str | None = None) -> None:
        if percent is not None:
            percent = min(max(percent, 0.0), 100.0)
        self._queue.put(
            RunProgress(
                run_id=self._run_id,
                attempt=self._attempt,
                percent=percent,
                note=note[:500] if note else note,
            )
        )
