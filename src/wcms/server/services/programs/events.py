"""Which state changes the alert engine hears of, as :class:`ProgramEvent`.

A change is judged with what came before it: a program that crashed, hung or loops is
*troubled* (stored with it), and its next change to ``running`` is a recovery. Only
the first change of a failure is told (the ``running → backoff`` of a crash, not the
``backoff → starting`` retry after it), so one crash is one event.
"""

from __future__ import annotations

from wcms.protocol.program_admin import ProgramEvent, ProgramEventKind
from wcms.protocol.programs import ProgramState, ProgramTransition, Reason

# A run that ended without anyone asking for it.
CRASH_REASONS = frozenset({Reason.CRASH, Reason.OOM, Reason.START_FAILED, Reason.AGENT_STOPPED})
# A failure is told on the way out of these; the way on (stopping → backoff after a
# hang) and an end while stopping on purpose are not news.
_ALIVE = frozenset({ProgramState.STARTING, ProgramState.RUNNING})
_STOPS = frozenset({Reason.USER_STOP, Reason.IN_GAME_STOP, Reason.REMOVED})


def classify(change: ProgramTransition, *, troubled: bool) -> tuple[ProgramEventKind | None, bool]:
    """What ``change`` means for alerts, if anything, and whether the program is
    troubled after it."""
    if change.to_state == ProgramState.CRASH_LOOP:
        return ProgramEventKind.CRASH_LOOP, True
    if change.reason == Reason.HANG and change.from_state in _ALIVE:
        return ProgramEventKind.HUNG, True
    if change.reason in CRASH_REASONS and change.from_state in _ALIVE:
        return ProgramEventKind.CRASHED, True
    if change.to_state == ProgramState.RUNNING:
        return (ProgramEventKind.RECOVERED if troubled else None), False
    if change.to_state == ProgramState.STOPPED and change.reason in _STOPS:
        return ProgramEventKind.STOPPED, False
    return None, troubled


def program_event(
    machine_id: str, change: ProgramTransition, kind: ProgramEventKind, *, restarts: int = 0
) -> ProgramEvent:
    return ProgramEvent(
        kind=kind,
        machine=machine_id,
        name=change.name,
        reason=change.reason,
        at=change.at,
        seq=change.seq,
        exit_code=change.exit.code if change.exit is not None else None,
        detail=change.detail or (change.exit.error if change.exit is not None else None),
        restarts=restarts,
    )
