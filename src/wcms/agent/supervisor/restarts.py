"""Why a program ended, and whether (and when) it starts again.

An exit the supervisor did not cause is classified from its status and its last console
lines; the program's restart policy then says whether it comes back, and its crash
record how soon: ``initial_s`` doubling to ``max_s``, and ``max_s`` in crash_loop once
``loop_crashes`` crashes fall within ``loop_window_s``, so that a server that cannot
start (a typo in its command line) is tried rarely and visibly, never in a hot loop,
and never given up on either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from wcms.agent.supervisor.store import ProgramRecord
from wcms.protocol.programs import Backoff, ProgramSpec, ProgramState, Reason, RestartPolicy

# Console lines looked at for the stop line, and kept in the exit record.
TAIL_LINES = 50
# SIGKILL: an exit by it that the supervisor did not send is the system's OOM killer.
_SIGKILL = 9
# Ends that the ``on-crash`` policy restarts; ``always`` restarts a plain exit too.
_FAILURES = frozenset(
    {Reason.CRASH, Reason.OOM, Reason.HANG, Reason.AGENT_STOPPED, Reason.START_FAILED}
)
# The doubling stops growing past this step (2**30 is past any ceiling).
_MAX_STEP = 30


@dataclass(frozen=True)
class ExitStatus:
    code: int | None
    signal: int | None


def exit_status(status: int | None) -> ExitStatus:
    """A status as the system gives it (negative: the signal that killed it)."""
    if status is None:
        return ExitStatus(code=None, signal=None)
    if status < 0:
        return ExitStatus(code=None, signal=min(-status, 255))
    return ExitStatus(code=status, signal=None)


def classify(
    spec: ProgramSpec, status: ExitStatus, *, tail: Sequence[str], found_dead: bool
) -> Reason:
    """Why a program ended by itself. An unknown status (an adopted program's) is
    ``agent_stopped`` when it was found dead at start, ``crash`` when seen dying."""
    if status.code is None and status.signal is None:
        return Reason.AGENT_STOPPED if found_dead else Reason.CRASH
    if status.code == 0:
        if spec.clean_exit_is_stop or _said_stop(spec.stop_line, tail):
            return Reason.IN_GAME_STOP
        return Reason.EXITED
    if status.signal == _SIGKILL:
        return Reason.OOM
    return Reason.CRASH


def _said_stop(pattern: str | None, tail: Sequence[str]) -> bool:
    if pattern is None:
        return False
    regex = re.compile(pattern)
    return any(regex.search(line) for line in tail[-TAIL_LINES:])


def restarts(policy: RestartPolicy, reason: Reason) -> bool:
    """Whether ``policy`` starts a program again after it ended for ``reason``."""
    if reason is Reason.IN_GAME_STOP or policy is RestartPolicy.NEVER:
        return False
    if reason in _FAILURES:
        return True
    return policy is RestartPolicy.ALWAYS and reason is Reason.EXITED


def forgive(record: ProgramRecord, backoff: Backoff, *, uptime_s: float | None) -> bool:
    """Forget the crashes once the program ran ``healthy_s``; True if there were any."""
    if uptime_s is None or uptime_s < backoff.healthy_s:
        return False
    had = bool(record.crashes) or record.backoff_step > 0
    record.crashes = []
    record.backoff_step = 0
    return had


def count_crash(record: ProgramRecord, backoff: Backoff, *, now: float) -> ProgramState:
    """Count a crash at ``now`` (seconds since the epoch) and schedule the next start:
    returns ``backoff`` or ``crash_loop`` and sets ``record.next_start_at``."""
    record.crashes = [at for at in record.crashes if now - at < backoff.loop_window_s]
    record.crashes.append(now)
    if len(record.crashes) >= backoff.loop_crashes:
        delay = backoff.max_s
        state = ProgramState.CRASH_LOOP
    else:
        delay = min(backoff.max_s, backoff.initial_s * 2 ** min(record.backoff_step, _MAX_STEP))
        state = ProgramState.BACKOFF
    record.backoff_step += 1
    record.next_start_at = now + delay
    return state
