"""The run manager: turns delivered runs into executions, exactly once each.

Transports hand it every :class:`RunEnvelope` and cancel they receive, duplicates
included (the server re-sends undone runs on every reconnect and poll). It consults the
journal before anything else, so a run attempt is started at most once across
reconnects and restarts; and every report it makes goes through the outbox, which keeps
it until the server confirms it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wcms.agent.actions import ActionContext, ActionOutcome, ActionRegistry
from wcms.agent.errors import JournalError
from wcms.agent.files import FileStore
from wcms.agent.journal import EntryState, Journal, JournalEntry
from wcms.agent.outbox import Outbox, RunKey
from wcms.agent.progress import ProgressQueue, RunProgressReporter
from wcms.protocol import RunEnvelope, RunResult, RunState, RunUpdate

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the agent stopped while this command was running; it was not run again"
EXPIRED = "expired before it started"
CANCELLED_BEFORE_START = "cancelled before it started"
# How long an action may take to honour a cancel before its task is cancelled.
CANCEL_GRACE_S = 5.0
# Beyond the run's own timeout, how long an action may take to report it.
TIMEOUT_GRACE_S = 10.0
ACKED_RETENTION_S = 7 * 24 * 3600.0


@dataclass
class _ActiveRun:
    envelope: RunEnvelope
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    forced: bool = False


class RunManager:
    """Starts, cancels and reports runs. Owned by one event loop."""

    def __init__(
        self,
        journal: Journal,
        outbox: Outbox,
        *,
        actions: ActionRegistry,
        progress: ProgressQueue | None = None,
        files: FileStore | None = None,
        max_output_chars: int = 64 * 1024,
    ) -> None:
        self._journal = journal
        self._outbox = outbox
        self._actions = actions
        self.progress = progress or ProgressQueue()
        self._files = files or FileStore()
        self._max_output_chars = max_output_chars
        self._active: dict[RunKey, _ActiveRun] = {}
        self._stopping = False

    def recover(self) -> None:
        """At start: report runs the previous agent process left unfinished as
        interrupted (they are not run again), and queue every final report the server
        has not confirmed; forget old confirmed ones."""
        for update in self._journal.interrupt_unfinished(RunResult(error=INTERRUPTED)):
            log.warning("run %s/%s: %s", update.run_id, update.attempt, INTERRUPTED)
        for update in self._journal.unacked():
            self._outbox.put(update)
        self._journal.prune(ACKED_RETENTION_S)

    def submit(self, envelope: RunEnvelope) -> bool:
        """Take a delivered run. Returns True if it was new, False for a duplicate
        (whose state is reported again instead)."""
        if self._stopping:
            return False
        key = (envelope.run_id, envelope.attempt)
        entry = self._journal.lookup(*key)
        if entry is not None:
            self._report_again(entry)
            return False
        if self._journal.cancel_requested(envelope.run_id):
            self._record_unstarted(envelope, RunState.CANCELLED, error=CANCELLED_BEFORE_START)
        elif _expired(envelope):
            self._record_unstarted(envelope, RunState.FAILED, error=EXPIRED)
        else:
            self._start(envelope)
        return True

    def cancel(self, run_id: int) -> None:
        """Cancel ``run_id``: stop it if running; otherwise make sure it never starts."""
        running = [run for key, run in self._active.items() if key[0] == run_id]
        for run in running:
            log.info("run %s/%s: cancelling", run_id, run.envelope.attempt)
            run.cancelled.set()
            asyncio.get_running_loop().call_later(CANCEL_GRACE_S, self._force_cancel, run)
        if not running:
            # Remembered even if an attempt already finished: a later attempt of a
            # cancelled run must not start either.
            self._journal.request_cancel(run_id)

    def is_running(self, run_id: int, attempt: int = 1) -> bool:
        return (run_id, attempt) in self._active

    async def join(self) -> None:
        """Wait until no run is in progress."""
        while self._active:
            tasks = [run.task for run in self._active.values() if run.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop for good: kill running commands and leave their journal entries
        ``started``, so the next agent start reports them as interrupted."""
        self._stopping = True
        tasks = [run.task for run in self._active.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, envelope: RunEnvelope) -> None:
        # 1. Journal first, durably: if the agent dies from here on, the run is
        #    reported interrupted and never started a second time.
        self._journal.start(envelope)
        key = (envelope.run_id, envelope.attempt)
        log.info("run %s/%s: starting %s", envelope.run_id, envelope.attempt, envelope.type)
        # 2. Tell the server it is running, then 3. run it in its own task.
        self._outbox.put(RunUpdate(run_id=key[0], attempt=key[1], state=RunState.RUNNING))
        run = _ActiveRun(envelope)
        self._active[key] = run
        run.task = asyncio.get_running_loop().create_task(self._execute(run))

    async def _execute(self, run: _ActiveRun) -> None:
        envelope = run.envelope
        started = time.monotonic()
        reporter = RunProgressReporter(
            self.progress, envelope.run_id, envelope.attempt, limit=self._max_output_chars
        )
        ctx = ActionContext(cancelled=run.cancelled, progress=reporter, files=self._files)
        try:
            outcome = await asyncio.wait_for(
                self._actions.run(envelope, ctx), envelope.timeout_s + TIMEOUT_GRACE_S
            )
        except TimeoutError:
            outcome = _outcome(RunState.TIMED_OUT, f"timed out after {envelope.timeout_s:g} s")
        except asyncio.CancelledError:
            if self._stopping or not run.forced:
                self._active.pop((envelope.run_id, envelope.attempt), None)
                raise
            outcome = _outcome(RunState.CANCELLED, "cancelled while running")
        except Exception as exc:  # an action's bug must not take the agent down
            log.exception("run %s/%s: the action failed", envelope.run_id, envelope.attempt)
            outcome = _outcome(RunState.FAILED, f"the agent could not run it: {exc!r}")
        if outcome.result.duration_ms is None:
            duration_ms = int((time.monotonic() - started) * 1000)
            outcome = ActionOutcome(
                outcome.state, outcome.result.model_copy(update={"duration_ms": duration_ms})
            )
        self._finish(envelope, outcome)

    def _finish(self, envelope: RunEnvelope, outcome: ActionOutcome) -> None:
        # 4. Journal the result before reporting it: the report then survives restarts.
        key = (envelope.run_id, envelope.attempt)
        self._active.pop(key, None)
        try:
            self._journal.finish(*key, state=outcome.state, result=outcome.result)
        except JournalError:
            # Still reported below; only a restart before the server confirms loses it.
            log.exception("run %s/%s: could not journal the result", *key)
        log.info("run %s/%s: %s", key[0], key[1], outcome.state.value)
        self._outbox.put(
            RunUpdate(run_id=key[0], attempt=key[1], state=outcome.state, result=outcome.result)
        )

    def _force_cancel(self, run: _ActiveRun) -> None:
        """The action did not honour the cancel in time: cancel its task."""
        if run.task is not None and not run.task.done():
            run.forced = True
            run.task.cancel()

    def _record_unstarted(self, envelope: RunEnvelope, state: RunState, *, error: str) -> None:
        result = RunResult(error=error)
        entry_state: EntryState = "cancelled" if state is RunState.CANCELLED else "finished"
        self._journal.record_unstarted(
            envelope, entry_state=entry_state, state=state, result=result
        )
        log.info("run %s/%s: %s", envelope.run_id, envelope.attempt, error)
        self._outbox.put(
            RunUpdate(run_id=envelope.run_id, attempt=envelope.attempt, state=state, result=result)
        )

    def _report_again(self, entry: JournalEntry) -> None:
        """The server delivered a run it already gave us: repeat what we know."""
        key = (entry.run_id, entry.attempt)
        final = entry.final_update()
        if final is not None:
            # Even if the server acknowledged it: delivering the run again means the
            # server does not have the result (it lost it, or the ack raced this
            # delivery), and a duplicate final report is harmless.
            self._outbox.put(final)
        elif key in self._active:
            self._outbox.put(RunUpdate(run_id=key[0], attempt=key[1], state=RunState.RUNNING))
        log.debug("run %s/%s: delivered again (%s); not started again", *key, entry.state)


def _expired(envelope: RunEnvelope) -> bool:
    """Whether the run's expiry passed before it could start. Judged by the time the
    server said was left when it sent the run, so this machine's wall clock (often
    wrong on a PC with a flat CMOS battery) plays no part; ``expires_at`` is only for a
    server too old to say."""
    if envelope.expires_in_s is not None:
        return envelope.expires_in_s <= 0
    if envelope.expires_at is None:
        return False
    expires_at = envelope.expires_at
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return expires_at <= datetime.now(UTC)


def _outcome(state: RunState, error: str) -> ActionOutcome:
    return ActionOutcome(state, RunResult(error=error))
