"""When a maintenance window is open: recurring ones in their own zone (over midnight, on
some days, across daylight saving time), one-off ones; and the start of each opening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from wcms.server.services.alerts.config import server_timezone
from wcms.server.services.alerts.windows import last_opening, window_open
from wcms.server.store.alert_config import WindowRecord

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def recurring(
    start: str, end: str, *, days: list[str] | None = None, zone: str = "Asia/Seoul"
) -> WindowRecord:
    return WindowRecord(
        id=1,
        name="w",
        selector="all",
        days=days,
        start_time=start,
        end_time=end,
        timezone=zone,
        starts_at=None,
        ends_at=None,
        report_left_on=False,
        channels=[],
        last_report_at=None,
        created_at=CREATED,
        created_by=None,
    )


def once(starts_at: datetime, ends_at: datetime) -> WindowRecord:
    return WindowRecord(
        id=2,
        name="once",
        selector="all",
        days=None,
        start_time=None,
        end_time=None,
        timezone="UTC",
        starts_at=starts_at,
        ends_at=ends_at,
        report_left_on=False,
        channels=[],
        last_report_at=None,
        created_at=CREATED,
        created_by=None,
    )


def seoul(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    # March 2026: the 1st is a Sunday.
    return datetime(2026, month, day, hour, minute, tzinfo=SEOUL)


# Sunday 1 March 2026 … Monday 2 March, in Seoul (no daylight saving time there).
NIGHTLY = [
    (seoul(1, 21, 59), False),
    (seoul(1, 22, 0), True),
    (seoul(1, 23, 59), True),
    (seoul(2, 0, 0), True),
    (seoul(2, 7, 59), True),
    (seoul(2, 8, 0), False),
    (seoul(2, 12, 0), False),
]


@pytest.mark.parametrize(("at", "open_"), NIGHTLY, ids=lambda v: str(v))
def test_a_window_over_midnight_runs_into_the_next_morning(at, open_):
    assert window_open(recurring("22:00", "08:00"), at) is open_


@pytest.mark.parametrize(("at", "open_"), NIGHTLY, ids=lambda v: str(v))
def test_it_is_the_same_instant_whatever_zone_it_is_asked_in(at, open_):
    assert window_open(recurring("22:00", "08:00"), at.astimezone(UTC)) is open_
    assert window_open(recurring("22:00", "08:00"), at.astimezone(NEW_YORK)) is open_


def test_the_day_named_is_the_day_the_window_opens():
    sunday_night = recurring("22:00", "08:00", days=["sun"])
    assert window_open(sunday_night, seoul(1, 22, 30))  # Sunday evening
    assert window_open(sunday_night, seoul(2, 7, 30))  # Monday morning, from Sunday
    assert not window_open(sunday_night, seoul(2, 22, 30))  # Monday evening
    assert not window_open(sunday_night, seoul(1, 7, 30))  # Sunday morning: from Saturday
    assert window_open(sunday_night, seoul(8, 23, 0))  # the next Sunday


def test_a_sunday_only_day_window():
    sunday = recurring("09:00", "18:00", days=["sun"])
    assert window_open(sunday, seoul(1, 9, 0)) and window_open(sunday, seoul(1, 17, 59))
    assert not window_open(sunday, seoul(1, 18, 0)) and not window_open(sunday, seoul(1, 8, 59))
    for day in range(2, 8):  # Monday to Saturday
        assert not window_open(sunday, seoul(day, 12, 0))


def test_weekdays_and_every_day():
    weekdays = recurring("18:00", "20:00", days=["mon", "tue", "wed", "thu", "fri"])
    every_day = recurring("18:00", "20:00")
    for day in range(1, 8):
        at = seoul(day, 19, 0)
        assert window_open(every_day, at)
        assert window_open(weekdays, at) is (at.weekday() < 5)


def test_a_window_whose_end_is_its_start_lasts_a_whole_day():
    all_day = recurring("06:00", "06:00", days=["mon"])
    assert window_open(all_day, seoul(2, 6, 0)) and window_open(all_day, seoul(3, 5, 59))
    assert not window_open(all_day, seoul(3, 6, 0)) and not window_open(all_day, seoul(2, 5, 59))
    assert last_opening(all_day, seoul(3, 5, 0)) == seoul(2, 6, 0)


def test_the_last_opening_names_the_start_of_the_opening_it_is_in():
    nightly = recurring("22:00", "08:00")
    assert last_opening(nightly, seoul(1, 23, 0)) == seoul(1, 22, 0)
    assert last_opening(nightly, seoul(2, 3, 0)) == seoul(1, 22, 0)
    assert last_opening(nightly, seoul(2, 22, 0)) == seoul(2, 22, 0)
    assert last_opening(nightly, seoul(2, 12, 0)) is None
    opened = last_opening(nightly, seoul(2, 3, 0))
    assert opened is not None and opened.tzinfo is not None
    assert opened.utcoffset() == timedelta(0)  # in UTC
    # Each night is its own opening.
    assert last_opening(nightly, seoul(3, 1, 0)) == seoul(2, 22, 0)


def test_a_one_off_window_is_open_from_its_start_to_its_end():
    starts, ends = datetime(2026, 3, 5, 9, tzinfo=UTC), datetime(2026, 3, 5, 17, tzinfo=UTC)
    window = once(starts, ends)
    assert not window_open(window, starts - timedelta(seconds=1))
    assert window_open(window, starts) and window_open(window, ends - timedelta(seconds=1))
    assert not window_open(window, ends)
    assert last_opening(window, datetime(2026, 3, 5, 12, tzinfo=UTC)) == starts
    assert last_opening(window, ends + timedelta(days=1)) is None


def test_a_one_off_window_given_with_an_offset_is_the_same_instants():
    window = once(seoul(5, 9, 0), seoul(5, 17, 0))
    assert window_open(window, datetime(2026, 3, 5, 0, 30, tzinfo=UTC))  # 09:30 in Seoul
    assert not window_open(window, datetime(2026, 3, 5, 8, 30, tzinfo=UTC))  # 17:30


def test_a_night_window_keeps_its_wall_clock_hours_across_daylight_saving_time():
    # New York springs forward on Sunday 8 March 2026 (02:00 -> 03:00) and falls back
    # on Sunday 1 November (02:00 -> 01:00).
    nightly = recurring("22:00", "06:00", zone="America/New_York")
    spring = datetime(2026, 3, 7, 22, 0, tzinfo=NEW_YORK)
    assert last_opening(nightly, datetime(2026, 3, 8, 5, 30, tzinfo=NEW_YORK)) == spring
    assert not window_open(nightly, datetime(2026, 3, 8, 6, 0, tzinfo=NEW_YORK))
    opened = spring.astimezone(UTC)
    closes = datetime(2026, 3, 8, 6, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert closes - opened == timedelta(hours=7)  # an hour short that night
    autumn = datetime(2026, 10, 31, 22, 0, tzinfo=NEW_YORK)
    assert last_opening(nightly, datetime(2026, 11, 1, 5, 59, tzinfo=NEW_YORK)) == autumn
    assert not window_open(nightly, datetime(2026, 11, 1, 6, 0, tzinfo=NEW_YORK))
    # Both 01:30s of the autumn night are inside.
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert window_open(nightly, first) and window_open(nightly, first + timedelta(hours=1))


def test_a_window_opening_in_the_skipped_hour_opens_when_the_clocks_go_on():
    # Berlin skips 02:00-03:00 on Sunday 29 March 2026: a 02:30 start is 03:30 that day.
    early = recurring("02:30", "04:00", zone="Europe/Berlin")
    assert not window_open(early, datetime(2026, 3, 29, 3, 15, tzinfo=BERLIN))
    assert window_open(early, datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN))
    assert window_open(early, datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN))  # a normal day


def test_the_server_time_zone_comes_from_tz_then_localtime_then_utc(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Seoul")
    assert server_timezone() == "Asia/Seoul"
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert server_timezone() == "Europe/Berlin"
    monkeypatch.setenv("TZ", "Not/AZone")
    zone = server_timezone()
    ZoneInfo(zone)  # a name zoneinfo knows: /etc/localtime's, or UTC
