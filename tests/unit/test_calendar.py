"""Working-day deadlines: England and Wales bank holidays, closures, Europe/London DST."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from router.calendar import LONDON, WorkingCalendar
from schemas.common import TimeUnit

WD = TimeUnit.WORKING_DAYS
CAL = TimeUnit.CALENDAR_DAYS
HOURS = TimeUnit.HOURS
CALENDAR = WorkingCalendar()


def london(y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=LONDON, fold=fold)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- concrete examples --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 8, 25), False),  # Late Summer Bank Holiday 2025
        (date(2025, 12, 26), False),  # Boxing Day 2025 (Friday)
        (date(2026, 4, 2), True),  # Thursday before Good Friday
        (date(2026, 4, 3), False),  # Good Friday 2026
        (date(2026, 4, 6), False),  # Easter Monday 2026
        (date(2026, 12, 25), False),  # Christmas Day 2026 (Friday)
        (date(2026, 12, 28), False),  # substitute for Boxing Day (Saturday 26th)
        (date(2026, 12, 29), True),
        (date(2027, 1, 1), False),  # New Year's Day 2027 (Friday)
        (date(2027, 12, 27), False),  # substitute for Christmas Day (Saturday)
        (date(2027, 12, 28), False),  # substitute for Boxing Day (Sunday)
        (date(2026, 1, 10), False),  # a Saturday
        (date(2026, 1, 11), False),  # a Sunday
        (date(2026, 1, 12), True),  # an ordinary Monday
    ],
)
def test_working_days_exclude_weekends_and_england_bank_holidays(day: date, working: bool) -> None:
    assert CALENDAR.is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "amount", "due"),
    [
        # Friday 15:00 + 2 is Tuesday 15:00.
        (london(2026, 1, 9, 15), 2, london(2026, 1, 13, 15)),
        # Saturday 10:00 starts from Monday 00:00, so + 2 is Wednesday 00:00.
        (london(2026, 1, 10, 10), 2, london(2026, 1, 14)),
        # Wednesday 09:00 + 5 skips the Spring Bank Holiday, Monday 25 May 2026.
        (london(2026, 5, 20, 9), 5, london(2026, 5, 28, 9)),
        # Thursday before Easter 2026 + 1 skips Good Friday, the weekend and Easter Monday.
        (london(2026, 4, 2, 10), 1, london(2026, 4, 7, 10)),
        # A start on Good Friday moves to Tuesday 00:00; + 1 is Wednesday 00:00.
        (london(2026, 4, 3, 14), 1, london(2026, 4, 8)),
        # Late Summer Bank Holiday 2025.
        (london(2025, 8, 22, 17), 1, london(2025, 8, 26, 17)),
        # Christmas 2026: 25 Dec (Fri) and 28 Dec (Mon, substitute for Boxing Day) are off.
        (london(2026, 12, 24, 12), 1, london(2026, 12, 29, 12)),
        (london(2026, 12, 24, 12), 3, london(2026, 12, 31, 12)),
        # New Year 2027: 1 Jan is a Friday.
        (london(2026, 12, 24, 12), 4, london(2027, 1, 4, 12)),
        (london(2026, 12, 31, 16), 1, london(2027, 1, 4, 16)),
        # Easter 2027 (Good Friday 26 March, Easter Monday 29 March) around the clock change.
        (london(2027, 3, 25, 10), 1, london(2027, 3, 30, 10)),
    ],
)
def test_working_day_deadlines_skip_weekends_and_bank_holidays(
    start: datetime, amount: int, due: datetime
) -> None:
    assert CALENDAR.add(start, amount, WD) == due


def test_a_closure_day_is_not_a_working_day_and_is_skipped() -> None:
    closed = WorkingCalendar([date(2026, 1, 2)])
    assert not closed.is_working_day(date(2026, 1, 2))
    start = london(2025, 12, 31, 10)
    assert CALENDAR.add(start, 1, WD) == london(2026, 1, 2, 10)
    assert closed.add(start, 1, WD) == london(2026, 1, 5, 10)


def test_local_time_of_day_is_kept_across_the_spring_clock_change() -> None:
    due = CALENDAR.add(london(2026, 3, 27, 9), 1, WD)  # Friday 09:00 GMT
    assert due == utc(2026, 3, 30, 8)  # Monday 09:00 BST
    assert due.astimezone(LONDON).time() == time(9, 0)


def test_local_time_of_day_is_kept_across_the_autumn_clock_change() -> None:
    due = CALENDAR.add(london(2026, 10, 23, 9), 1, WD)  # Friday 09:00 BST
    assert due == utc(2026, 10, 26, 9)  # Monday 09:00 GMT
    assert due.astimezone(LONDON).time() == time(9, 0)


def test_a_start_exactly_at_local_midnight_keeps_midnight() -> None:
    assert CALENDAR.add(london(2026, 1, 12), 1, WD) == london(2026, 1, 13)
    # 23:00 UTC on Monday 8 June 2026 is 00:00 BST on Tuesday 9 June.
    assert CALENDAR.add(utc(2026, 6, 8, 23), 1, WD) == utc(2026, 6, 9, 23)


def test_the_start_day_is_the_london_day_not_the_utc_day() -> None:
    # Friday 23:30 UTC in summer is Saturday 00:30 in London: the count starts on Monday.
    assert CALENDAR.add(utc(2026, 6, 12, 23, 30), 0, WD) == london(2026, 6, 15)


def test_zero_working_days_returns_the_start_or_the_moved_start() -> None:
    assert CALENDAR.add(london(2026, 1, 12, 11, 5), 0, WD) == london(2026, 1, 12, 11, 5)
    assert CALENDAR.add(london(2026, 1, 10, 10), 0, WD) == london(2026, 1, 12)


def test_calendar_days_in_a_spring_gap_move_forward_by_the_gap() -> None:
    # 01:30 on Sunday 29 March 2026 does not exist in London: it becomes 02:30 BST.
    due = CALENDAR.add(london(2026, 3, 28, 1, 30), 1, CAL)
    assert due == utc(2026, 3, 29, 1, 30)
    assert due.astimezone(LONDON).time() == time(2, 30)


def test_calendar_days_in_an_autumn_fold_take_the_first_occurrence() -> None:
    # 01:30 on Sunday 25 October 2026 happens twice: the first one (BST) is taken.
    assert CALENDAR.add(london(2026, 10, 24, 1, 30), 1, CAL) == utc(2026, 10, 25, 0, 30)
    second = london(2026, 10, 25, 1, 30, fold=1)
    assert CALENDAR.add(second, 1, CAL) == london(2026, 10, 26, 1, 30)
    # No day stepped: the instant itself is kept. (PEP 495: a fold=1 time never compares
    # equal across zones, hence the UTC spelling of the second 01:30 GMT.)
    assert CALENDAR.add(second, 0, CAL) == utc(2026, 10, 25, 1, 30)


def test_calendar_days_do_not_skip_weekends_or_move_the_start() -> None:
    assert CALENDAR.add(london(2026, 12, 24, 12), 3, CAL) == london(2026, 12, 27, 12)


def test_hours_are_exact_elapsed_time_across_a_clock_change() -> None:
    assert CALENDAR.add(utc(2026, 3, 28, 12), 24, HOURS) == utc(2026, 3, 29, 12)


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CALENDAR.add(datetime(2026, 1, 12, 9), 1, WD)


def test_a_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        CALENDAR.add(london(2026, 1, 12, 9), -1, WD)


def test_closure_days_must_be_dates_not_datetimes() -> None:
    with pytest.raises(TypeError):
        WorkingCalendar([london(2026, 1, 2)])


def test_the_calendar_is_immutable() -> None:
    with pytest.raises(AttributeError):
        CALENDAR.version = "other"  # type: ignore[misc]


def test_the_version_names_the_holiday_data_and_is_stable_for_equal_closures() -> None:
    a = WorkingCalendar([date(2026, 1, 2), date(2026, 8, 28)])
    b = WorkingCalendar([date(2026, 8, 28), date(2026, 1, 2), date(2026, 1, 2)])
    assert re.fullmatch(r"gb-eng/holidays-[\w.]+/closures-[0-9a-f]{12}", a.version)
    assert a.version == b.version
    assert a == b
    assert hash(a) == hash(b)
    assert a.version != CALENDAR.version


def test_working_days_between_counts_whole_working_days() -> None:
    start = london(2026, 12, 24, 12)
    assert CALENDAR.working_days_between(start, london(2027, 1, 4, 12)) == 4
    assert CALENDAR.working_days_between(start, london(2027, 1, 4, 11, 59)) == 3
    assert CALENDAR.working_days_between(start, london(2026, 12, 1)) == 0


# --- properties ---------------------------------------------------------------------------

PROPS = settings(max_examples=150, deadline=None)
_timezones = st.sampled_from(
    [UTC, LONDON, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
)
starts = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2028, 6, 30),
    timezones=_timezones,
)
amounts = st.integers(min_value=0, max_value=60)
closure_sets = st.frozensets(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31)), max_size=15
)


def local_day(instant: datetime) -> date:
    return instant.astimezone(LONDON).date()


@PROPS
@given(starts, st.integers(min_value=1, max_value=60))
def test_working_day_deadlines_land_on_a_london_working_day(start: datetime, n: int) -> None:
    assert CALENDAR.is_working_day(local_day(CALENDAR.add(start, n, WD)))


@PROPS
@given(starts, amounts, amounts)
def test_working_day_deadlines_are_monotonic_in_the_amount(start: datetime, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert CALENDAR.add(start, low, WD) <= CALENDAR.add(start, high, WD)
    if low < high:
        assert CALENDAR.add(start, low, WD) < CALENDAR.add(start, high, WD)


@PROPS
@given(starts, amounts, amounts)
def test_adding_working_days_in_two_steps_equals_adding_them_at_once(
    start: datetime, a: int, b: int
) -> None:
    assume(CALENDAR.is_working_day(local_day(start)))
    assert CALENDAR.add(CALENDAR.add(start, a, WD), b, WD) == CALENDAR.add(start, a + b, WD)


@PROPS
@given(starts, amounts)
def test_a_working_day_start_keeps_its_london_wall_clock_time(start: datetime, n: int) -> None:
    # Clocks change on Sundays, never a working day, so the gap rule cannot apply here.
    assume(CALENDAR.is_working_day(local_day(start)))
    before = start.astimezone(LONDON)
    after = CALENDAR.add(start, n, WD).astimezone(LONDON)
    assert (after.hour, after.minute, after.second, after.microsecond) == (
        before.hour,
        before.minute,
        before.second,
        before.microsecond,
    )


@PROPS
@given(starts, st.integers(min_value=1, max_value=60))
def test_working_days_strictly_between_start_and_due_day_number_amount_minus_one(
    start: datetime, n: int
) -> None:
    assume(CALENDAR.is_working_day(local_day(start)))
    first, last = local_day(start), local_day(CALENDAR.add(start, n, WD))
    between = (first + timedelta(days=k) for k in range(1, (last - first).days))
    assert sum(CALENDAR.is_working_day(d) for d in between) == n - 1


@PROPS
@given(starts, amounts, closure_sets)
def test_adding_closure_days_never_makes_a_deadline_earlier(
    start: datetime, n: int, closures: frozenset[date]
) -> None:
    closed = WorkingCalendar(closures)
    assert closed.add(start, n, WD) >= CALENDAR.add(start, n, WD)


@PROPS
@given(starts, amounts, st.sampled_from(list(TimeUnit)))
def test_every_deadline_is_an_aware_utc_datetime(start: datetime, n: int, unit: TimeUnit) -> None:
    due = CALENDAR.add(start, n, unit)
    assert due.tzinfo is UTC
    assert due >= start


@PROPS
@given(starts, amounts)
def test_hours_add_exact_elapsed_time(start: datetime, n: int) -> None:
    assert CALENDAR.add(start, n, HOURS) - start == timedelta(hours=n)


@PROPS
@given(starts, amounts)
def test_calendar_days_move_the_london_date_by_the_amount(start: datetime, n: int) -> None:
    assert (local_day(CALENDAR.add(start, n, CAL)) - local_day(start)).days == n


@PROPS
@given(starts, amounts)
def test_working_days_between_inverts_add(start: datetime, n: int) -> None:
    assert CALENDAR.working_days_between(start, CALENDAR.add(start, n, WD)) == n


@PROPS
@given(closure_sets, closure_sets)
def test_the_version_changes_exactly_when_the_closure_days_change(
    a: frozenset[date], b: frozenset[date]
) -> None:
    assert (WorkingCalendar(a).version == WorkingCalendar(b).version) == (a == b)
