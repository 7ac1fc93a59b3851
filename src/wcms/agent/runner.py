"""The run manager: turns delivered runs into executions, exactly once each.

Transports hand it every :class:`RunEnvelope` and cancel they receive, duplicates
included (the server re-sends undone runs on every reconnect and poll). It consults the
journal before anything else, so a run attempt is started at most once across
reconnects and restarts; and every report it makes goes through the outbox, which keeps
it until the server confirms it. A run the previous agent process did not see end is
reported failed and interrupted once nothing of it runs any more: the server then
retries it only if its command is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from wcms.agent.actions import ActionContext, ActionOutcome, ActionRegistry
from wcms.agent.errors import JournalError
from wcms.agent.files import FileStore
from wcms.agent.journal import EntryState, Journal, JournalEntry, UnfinishedRun
from wcms.agent.outbox import Outbox, RunKey
from wcms.agent.platform import Platform, current_platform
from wcms.agent.platform.base import Leftovers
from wcms.agent.progress import ProgressQueue, RunProgressReporter
from wcms.protocol import RunEnvelope, RunResult, RunState, RunUpdate

log = logging.getLogger(__name__)

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
        platform: Platform | None = None,
    ) -> None:
        self._journal = journal
        self._outbox = outbox
        self._actions = actions
        self._platform = platform or current_platform()
        self.progress = progress or ProgressQueue()
        self._files = files or FileStore()
        self._max_output_chars = max_output_chars
        self._active: dict[RunKey, _ActiveRun] = {}
        self._stopping = False

    def recover(self) -> None:
        """At start: end the runs the previous agent process left unfinished (it died
        or was stopped while they ran): kill what is left of them and report them failed
        and interrupted; they are not run again. Then queue every final report the
        server has not confirmed, and forget old confirmed ones."""
        for run in self._journal.unfinished():
            self._interrupt(run)
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
        ``started``, marked as ended by the stop, so that the next agent start makes
        sure nothing of them is left and reports them as interrupted."""
        self._stopping = True
        keys = list(self._active)
        tasks = [run.task for run in self._active.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in keys:
            try:
                self._journal.mark_stopped(*key)
            except JournalError:
                log.exception("run %s/%s: could not journal that the stop ended it", *key)

    def _interrupt(self, run: UnfinishedRun) -> None:
        """Report a run the previous agent process did not see end."""
        key = (run.run_id, run.attempt)
        # 1. Nothing of it may run on once it is reported over: kill what is left.
        found = self._kill_leftovers(run)
        # 2. Then journal and report it, saying what is known.
        if run.stopped:
            opening = "interrupted: the agent was stopped while this ran, and ended it"
        else:
            opening = "interrupted: the agent stopped while this ran"
        error = "; ".join(part for part in (opening, found, "it was not run again") if part)
        result = RunResult(error=error, interrupted=True)
        self._journal.finish(*key, state=RunState.FAILED, result=result)
        log.warning("run %s/%s (%s): %s", key[0], key[1], run.type, error)

    def _kill_leftovers(self, run: UnfinishedRun) -> str | None:
        """Kill what still runs of ``run``; says what was found, None if nothing is."""
        if run.pgid is None or run.pgid_started is None:
            # It started no process that could outlive the agent, or the agent died
            # before it could journal one.
            return None
        try:
            leftovers = self._platform.kill_leftovers(run.pgid, started=run.pgid_started)
        except OSError as exc:
            log.exception("run %s/%s: could not look for its processes", run.run_id, run.attempt)
            return f"its processes could not be looked for ({exc})"
        return _leftover_words(leftovers, stopped=run.stopped)

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
        key = (envelope.run_id, envelope.attempt)
        reporter = RunProgressReporter(self.progress, *key, limit=self._max_output_chars)
        ctx = ActionContext(
            cancelled=run.cancelled,
            progress=reporter,
            files=self._files,
            on_process=partial(self._record_process, key),
        )
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

    def _record_process(self, key: RunKey, pid: int, started: float) -> None:
        # 3b. The action started its process: journal it at once, so that if the agent
        #     dies from here on, its next start finds and kills what is left of it.
        try:
            self._journal.record_process(*key, pgid=pid, started=started)
        except JournalError:
            # The run goes on; only a crash before it ends would leave it unreaped.
            log.exception("run %s/%s: could not journal its process", *key)

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


def _leftover_words(leftovers: Leftovers | None, *, stopped: bool) -> str | None:
    """What was found of an interrupted run's processes, in words; None if there is
    nothing to add (a stop that ended the run says so already)."""
    if leftovers is None:
        return None if stopped else "the system ended its processes with the agent"
    parts = []
    if leftovers.killed == 1:
        parts.append("its 1 remaining process was killed")
    elif leftovers.killed:
        parts.append(f"its {leftovers.killed} remaining processes were killed")
    if leftovers.alive:
        parts.append(f"{leftovers.alive} of its processes could not be killed")
    if not parts and not stopped:
        parts.append("its processes had already ended")
    return "; ".join(parts) or None


def _outcome(state: RunState, error: str) -> ActionOutcome:
    return ActionOutcome(state, RunResult(error=error))
