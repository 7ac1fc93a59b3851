"""When a maintenance window is open.

A recurring window opens at ``start_time`` local time, in its own zone, on each of its
``days`` (every day when it names none), and closes at ``end_time``; an end at or before
the start is on the next day, so "sun 22:00-08:00" is open from Sunday 22:00 to Monday
08:00 and the day named is the day it opens. A one-off window is open from ``starts_at``
to ``ends_at``.

Local times are turned into instants with :mod:`zoneinfo`, each on its own date, so a
window keeps its wall-clock hours across a change of daylight saving time (a night one
lasts an hour more or less that night). A time the clocks skip is read with the offset
before the change (02:30 on a spring-forward night is 03:30 summer time); a time they
pass twice is its first passing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from wcms.protocol.alerts import DAYS
from wcms.server.store.alert_config import WindowRecord


def window_open(window: WindowRecord, at: datetime) -> bool:
    """Whether ``window`` is open at ``at`` (an aware datetime)."""
    return last_opening(window, at) is not None


def last_opening(window: WindowRecord, at: datetime) -> datetime | None:
    """The start (UTC) of the opening of ``window`` that ``at`` falls in; None when the
    window is closed at ``at``. One opening has one start, so the start names it: what
    is done once per opening (the left-on report) is keyed on it."""
    at = at.astimezone(UTC)
    if window.starts_at is not None and window.ends_at is not None:
        opens, closes = window.starts_at.astimezone(UTC), window.ends_at.astimezone(UTC)
        return opens if opens <= at < closes else None
    if window.start_time is None or window.end_time is None:
        return None
    zone = ZoneInfo(window.timezone)
    start, end = time.fromisoformat(window.start_time), time.fromisoformat(window.end_time)
    today = at.astimezone(zone).date()
    # An opening lasts at most a day, so only one that began today or yesterday (local
    # dates) can hold ``at``; a change of offset moves it by hours, never by a day.
    for day in (today, today - timedelta(days=1)):
        if window.days is not None and DAYS[day.weekday()] not in window.days:
            continue
        opens, closes = _opening(day, start, end, zone)
        if opens <= at < closes:
            return opens
    return None


def _opening(day: date, start: time, end: time, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants (UTC) a window from ``start`` to ``end`` opening on ``day`` spans."""
    closing_day = day if end > start else day + timedelta(days=1)
    opens = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
    closes = datetime.combine(closing_day, end, tzinfo=zone).astimezone(UTC)
    return opens, closes
