"""Scheduled restarts: standard five-field cron expressions, evaluated in UTC.

The server checks an expression with :func:`check_cron` when it is saved, and the
agent computes the next restart with :func:`next_fire`: both use the same rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def check_cron(cron: str) -> None:
    """Raise ``ValueError`` saying what is wrong with ``cron``, if anything."""
    next_fire(cron, datetime.now(UTC))


def next_fire(cron: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``cron`` names (aware, UTC).

    Raises ``ValueError`` for a bad expression, or one that never fires."""
    if after.tzinfo is None:
        raise ValueError("next_fire needs an aware datetime")
    expression = _ALIASES.get(cron.strip().lower(), cron.strip())
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"a schedule is a cron expression of five fields (minute hour day month "
            f"weekday), as '0 5 * * *'; {cron!r} has {len(fields)}"
        )
    try:
        return next(CronSim(expression, after.astimezone(UTC)))
    except CronSimError as exc:
        raise ValueError(f"not a valid cron expression {cron!r}: {exc}") from None
    except StopIteration:
        raise ValueError(f"the cron expression {cron!r} never fires") from None
