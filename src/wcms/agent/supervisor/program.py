"""One supervised program: a task that moves it through its states.

``stopped → starting → running → stopping → stopped``, and ``backoff`` or
``crash_loop`` after an end it did not intend. Every change is a numbered transition
with its reason. An intended stop always passes through ``stopping``, so that its exit
can never be read as a crash; and only this task starts or stops the program, so a
request that comes during a stop waits for the stop to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from wcms.agent.platform.base import ConsoleUnavailable, ProgramProcess
from wcms.agent.supervisor import restarts
from wcms.agent.supervisor.console import ConsoleLog
from wcms.agent.supervisor.host import ACTIVE, WAITING, Change, Host, clip
from wcms.agent.supervisor.restarts import TAIL_LINES, classify, exit_status
from wcms.agent.supervisor.status import program_status
from wcms.agent.supervisor.stopping import StopPlan, stop_program, tree_gone
from wcms.agent.supervisor.store import ProgramRecord
from wcms.agent.supervisor.watch import RunWatch
from wcms.protocol.programs import ProgramExit, ProgramSpec, ProgramState, ProgramStatus, Reason

log = logging.getLogger(__name__)

# Intended stops after which the program starts again at once.
_RESTARTS = (Reason.USER_RESTART, Reason.SCHEDULED_RESTART, Reason.MEMORY)
# When some of a stopped program's processes could not be killed, the next try.
_LEFTOVER_RETRY_S = 10.0
# After an unexpected failure of the supervision itself, before it goes on.
_FAULT_PAUSE_S = 1.0


class Program:
    def __init__(
        self, spec: ProgramSpec, record: ProgramRecord, *, host: Host, directory: Path
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.record = record
        self.log = ConsoleLog(directory / "console.log", decode=self._decode)
        self.run_watch: RunWatch | None = None
        self._host = host
        self._process: ProgramProcess | None = None
        self._exited: asyncio.Task[int | None] | None = None
        self._leftover: ProgramProcess | None = None
        self._wake = asyncio.Event()
        self._removed = False
        self._first_start = True

    # What the supervisor asks of it.

    def update(self, spec: ProgramSpec) -> None:
        """A new spec from the server; it applies at the next start."""
        if spec.desired == "stopped":
            self.record.held = False
            self.record.restart_seq = max(self.record.restart_seq, spec.restart_seq)
        elif spec.restart_seq > self.record.restart_seq:
            self.record.held = False
        self.spec = spec
        self._removed = False
        self._wake.set()

    def remove(self) -> None:
        self._removed = True
        self._wake.set()

    async def send(self, text: str) -> str:
        if self.run_watch is None:
            raise ConsoleUnavailable(f"{self.name} is not running")
        return await self.run_watch.console.command(text)

    def status(self) -> ProgramStatus:
        return program_status(self.spec, self.record, self.run_watch)

    async def run(self) -> None:
        """Supervise until removed (or cancelled: the agent stops, the program runs on)."""
        await self._resume()
        if self.spec.autostart and self.record.held and self.spec.desired == "running":
            self.record.held = False  # autostart: it starts with the agent, whatever ended it
        while True:
            try:
                if not await self._step():
                    break
            except Exception:
                log.exception("%s: supervision failed; going on", self.name)
                await asyncio.sleep(_FAULT_PAUSE_S)
        if self.record.state is not ProgramState.STOPPED:
            self._transition(ProgramState.STOPPED, Reason.REMOVED)
        self._host.forget(self.name)

    async def close(self) -> None:
        """The agent stops: let go of the program, which runs on."""
        if self._exited is not None:
            self._exited.cancel()
        if self.run_watch is not None:
            await self.run_watch.close()
            self.run_watch = None
        if self._process is not None:
            self._process.close()

    # The states.

    async def _step(self) -> bool:
        """Act on the state once; False once the program is removed and stopped."""
        state = self.record.state
        if state in ACTIVE or (state is ProgramState.STOPPING and self._process is not None):
            # A stop a failure interrupted is taken up again by the next look.
            await self._supervise()
        elif state is ProgramState.STOPPING:
            self._transition(ProgramState.STOPPED, Reason.USER_STOP, detail="stop interrupted")
        elif self._removed:
            return False
        elif state in WAITING:
            await self._wait_retry()
        elif self.spec.desired == "running" and not self.record.held:
            await self._start(Reason.AUTOSTART if self._autostart() else Reason.USER_START)
        else:
            await self._sleep(None)
        return True

    def _autostart(self) -> bool:
        return self._first_start and self.spec.autostart

    async def _resume(self) -> None:
        """At the agent's start: adopt the program if it still runs, else record that it
        ended while no agent watched (and make sure nothing of it is left)."""
        record = self.record
        if record.state not in (*ACTIVE, ProgramState.STOPPING):
            return
        if record.pid is not None and record.create_time is not None:
            process = self._host.platform.adopt_program(
                record.pid, started=record.create_time, console=self.log.path
            )
            if process is not None:
                state = ProgramState.RUNNING
                ready_from = None
                if record.state is ProgramState.STARTING:
                    state, ready_from = ProgramState.STARTING, max(0, self.log.size() - 65536)
                self._attach(process, ready_from=ready_from)
                self._transition(state, Reason.ADOPTED, detail=f"pid {process.pid}")
                return
            await asyncio.to_thread(
                self._host.platform.kill_leftovers, record.pid, started=record.create_time
            )
        status = exit_status(None)
        tail = self.log.tail(TAIL_LINES)
        reason = classify(self._run_spec(), status, tail=tail, found_dead=True)
        uptime = self._uptime()
        self._clear_process()
        await self._after_exit(self._exit(reason, status, tail=tail), uptime_s=uptime)

    async def _start(self, reason: Reason) -> None:
        record = self.record
        spec = self.spec
        self._first_start = False
        if self._leftover is not None and not await tree_gone(self._leftover):
            self._retry_later("some processes of its last run could not be killed")
            return
        self._leftover = None
        record.restart_seq = max(record.restart_seq, spec.restart_seq)
        record.held = False
        record.next_start_at = None
        record.error = None
        record.run_spec = spec
        self._transition(ProgramState.STARTING, reason)
        try:
            self.log.path.parent.mkdir(parents=True, exist_ok=True)
            self.log.cap()
            offset = self.log.size()
            env = {**os.environ, **spec.env, **spec.secret_env}
            process = await self._host.platform.spawn_program(
                spec.command, cwd=spec.cwd, env=env, console=self.log.path
            )
        except (OSError, ValueError) as exc:  # ValueError: an environment name with "="
            error = clip(f"cannot start {spec.command[0]}: {exc}")
            record.error = error
            failed = ProgramExit(reason=Reason.START_FAILED, at=_now(), error=error)
            await self._after_exit(failed, uptime_s=None)
            return
        record.pid = process.pid
        record.create_time = process.started
        record.started_at = _now()
        if reason not in (Reason.USER_START, Reason.AUTOSTART):
            record.restarts += 1
        self._attach(process, ready_from=offset)
        self._host.save()
        assert self.run_watch is not None
        if self.run_watch.ready_at_once:
            self._transition(ProgramState.RUNNING, Reason.READY)

    async def _supervise(self) -> None:
        """Watch the run until it ends: by itself, or stopped by us."""
        process, exited, watch = self._process, self._exited, self.run_watch
        assert process is not None and exited is not None and watch is not None
        while True:
            scanning = self.record.state is ProgramState.STARTING and watch.scanning
            interval = self._host.pace.scan_s if scanning else self._host.watch_s()
            interval = watch.next_look_in(interval)
            process.poll_s = interval
            await self._sleep(interval)
            if exited.done():
                await self._ended_by_itself()
                return
            intent = self._intent()
            if intent is not None:
                await self._intended_stop(intent)
                return
            self.log.cap()
            finding = await watch.check(self.record.state)
            if exited.done():
                continue
            if finding.ready and self.record.state is ProgramState.STARTING:
                self._transition(ProgramState.RUNNING, Reason.READY)
            elif finding.changed:
                self._host.changed()
            if self.record.state is ProgramState.RUNNING:
                backoff = self.spec.backoff
                if restarts.forgive(self.record, backoff, uptime_s=self._uptime()):
                    self._host.save()
            if finding.intent is not None:
                await self._intended_stop(
                    finding.intent, detail=finding.detail, counted_down=finding.counted_down
                )
                return

    def _intent(self) -> Reason | None:
        """An intended stop the server's wishes call for."""
        if self._removed:
            return Reason.REMOVED
        if self.spec.desired == "stopped":
            return Reason.USER_STOP
        if self.spec.restart_seq > self.record.restart_seq:
            return Reason.USER_RESTART
        return None

    async def _intended_stop(
        self, reason: Reason, *, detail: str | None = None, counted_down: bool = False
    ) -> None:
        process, exited, watch = self._process, self._exited, self.run_watch
        assert process is not None and exited is not None and watch is not None
        self._transition(ProgramState.STOPPING, reason, detail=detail)
        plan = StopPlan(
            stop=watch.spec.stop,
            announce_minutes=None if counted_down else 0,
            polite=reason is not Reason.HANG,
        )
        result = await stop_program(process, exited, watch.console, plan)
        code = exited.result() if exited.done() and not exited.cancelled() else None
        exit = self._exit(reason, exit_status(code), tail=self.log.tail(TAIL_LINES))
        uptime = self._uptime()
        await self._release()
        if not result.gone:
            self._leftover = process
            self.record.error = "some of its processes could not be killed"
        if reason is Reason.HANG:
            await self._after_exit(exit, uptime_s=uptime, detail=result.detail)
            return
        self._transition(ProgramState.STOPPED, reason, detail=result.detail, exit=exit)
        if reason in _RESTARTS and not self._removed and self.spec.desired == "running":
            await self._start(reason)

    async def _ended_by_itself(self) -> None:
        process, exited = self._process, self._exited
        assert process is not None and exited is not None
        code = exited.result()
        # What it started may live on (a launcher's server): the run is over, so is it.
        if not await tree_gone(process):
            self._leftover = process
        tail = self.log.tail(TAIL_LINES)
        status = exit_status(code)
        reason = classify(self._run_spec(), status, tail=tail, found_dead=False)
        uptime = self._uptime()
        await self._release()
        await self._after_exit(self._exit(reason, status, tail=tail), uptime_s=uptime)

    async def _after_exit(
        self, exit: ProgramExit, *, uptime_s: float | None, detail: str | None = None
    ) -> None:
        """An end the program did not intend: its restart policy decides."""
        record, spec = self.record, self.spec
        restarts.forgive(record, spec.backoff, uptime_s=uptime_s)
        wanted = spec.desired == "running" and not self._removed
        if not (wanted and restarts.restarts(spec.restart, exit.reason)):
            # It stays stopped until the server asks again.
            record.held = wanted
            self._transition(ProgramState.STOPPED, exit.reason, detail=detail, exit=exit)
            return
        now = time.time()
        if exit.reason is Reason.AGENT_STOPPED:
            record.next_start_at = now  # a reboot, most likely: back at once
            state = ProgramState.BACKOFF
        else:
            state = restarts.count_crash(record, spec.backoff, now=now)
        delay = max(0.0, (record.next_start_at or now) - now)
        note = f"next start in {delay:.1f} s"
        detail = f"{detail}; {note}" if detail else note
        self._transition(state, exit.reason, detail=detail, exit=exit)

    async def _wait_retry(self) -> None:
        if self.spec.desired == "stopped":
            self.record.next_start_at = None
            self._transition(ProgramState.STOPPED, Reason.USER_STOP)
        elif self.spec.restart_seq > self.record.restart_seq:
            await self._start(Reason.USER_RESTART)
        else:
            delay = (self.record.next_start_at or 0.0) - time.time()
            if delay <= 0:
                await self._start(Reason.RETRY)
            else:
                await self._sleep(delay)

    def _retry_later(self, error: str) -> None:
        self.record.error = error
        self.record.next_start_at = time.time() + _LEFTOVER_RETRY_S
        self._transition(ProgramState.BACKOFF, Reason.START_FAILED, detail=error)

    # The process of the current run.

    def _attach(self, process: ProgramProcess, *, ready_from: int | None) -> None:
        self._process = process
        self.run_watch = RunWatch(
            self._run_spec(), process, self.log, pace=self._host.pace, ready_from=ready_from
        )
        self._exited = asyncio.create_task(process.wait(), name=f"wait {self.name}")
        self._exited.add_done_callback(lambda _: self._wake.set())

    async def _release(self) -> None:
        if self.run_watch is not None:
            await self.run_watch.close()
        if self._process is not None:
            self._process.close()
        self.run_watch = None
        self._process = None
        self._exited = None
        self._clear_process()

    def _clear_process(self) -> None:
        self.record.pid = None
        self.record.create_time = None
        self.record.started_at = None

    # Helpers.

    def _transition(
        self,
        to_state: ProgramState,
        reason: Reason,
        *,
        detail: str | None = None,
        exit: ProgramExit | None = None,
    ) -> None:
        change = Change(self.record.state, to_state, reason, clip(detail), exit)
        self.record.state = to_state
        if exit is not None:
            self.record.last_exit = exit
        log.info("%s: %s → %s (%s)", self.name, change.from_state, to_state, reason)
        self._host.transition(self.name, change)

    async def _sleep(self, timeout: float | None) -> None:
        """Until something changes (a request, the exit) or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    def _exit(self, reason: Reason, status: restarts.ExitStatus, *, tail: list[str]) -> ProgramExit:
        return ProgramExit(
            code=status.code,
            signal=status.signal,
            reason=reason,
            at=_now(),
            tail=[clip(line) or "" for line in tail[-TAIL_LINES:]],
        )

    def _run_spec(self) -> ProgramSpec:
        return self.record.run_spec or self.spec

    def _uptime(self) -> float | None:
        started = self.record.started_at
        return None if started is None else max(0.0, time.time() - started.timestamp())

    def _decode(self, data: bytes) -> str:
        return self._host.platform.decode_output(data, complete=True)


def _now() -> datetime:
    return datetime.now(UTC)
