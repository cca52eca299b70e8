"""Working-day calendar for procedure deadlines (ARCHITECTURE.md, "Procedures").

Pure: no I/O beyond the tz database, no clock. Deadlines are computed in Europe/London
local time and returned as UTC instants.

Non-existent and ambiguous local times (the rule used everywhere a local date and time of
day are turned back into an instant):

* spring-forward gap (e.g. 01:30 on 29 March 2026): the wall time is read with the offset
  in force before the change (fold=0), which moves it forward by the gap: 02:30 BST;
* autumn fold (e.g. 01:30 on 25 October 2026): the first occurrence (fold=0, BST).

UK clocks change on Sundays, which are never working days, so WORKING_DAYS results always
keep the exact local time of day; the rule matters for CALENDAR_DAYS only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import NoReturn
from zoneinfo import ZoneInfo

import holidays
from holidays.version import __version__ as _HOLIDAYS_VERSION

from schemas.common import TimeUnit

__all__ = ["LONDON", "WorkingCalendar"]

LONDON = ZoneInfo("Europe/London")
_ONE_DAY = timedelta(days=1)


def _to_london(instant: datetime) -> datetime:
    """Return `instant` in London time; refuse naive datetimes."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {instant.isoformat()}")
    return instant.astimezone(LONDON)


def _from_london(day: date, time_of_day: time) -> datetime:
    """The UTC instant of a London wall time (gap: forward by the gap; fold: first)."""
    wall = datetime.combine(day, time_of_day.replace(tzinfo=None, fold=0), tzinfo=LONDON)
    return wall.astimezone(UTC)


class WorkingCalendar:
    """England and Wales working days minus a partnership's closure days. Immutable."""

    __slots__ = ("_bank_holidays", "_closures", "_version")

    _closures: frozenset[date]
    _version: str
    _bank_holidays: dict[int, frozenset[date]]

    def __init__(self, closure_days: Iterable[date] = ()) -> None:
        closures = frozenset(closure_days)
        for day in closures:
            if isinstance(day, datetime) or not isinstance(day, date):
                raise TypeError(f"closure days must be dates, got {day!r}")
        digest = hashlib.sha256(",".join(sorted(d.isoformat() for d in closures)).encode())
        version = f"gb-eng/holidays-{_HOLIDAYS_VERSION}/closures-{digest.hexdigest()[:12]}"
        object.__setattr__(self, "_closures", closures)
        object.__setattr__(self, "_version", version)
        object.__setattr__(self, "_bank_holidays", {})

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkingCalendar):
            return NotImplemented
        return self._version == other._version and self._closures == other._closures

    def __hash__(self) -> int:
        return hash((self._version, self._closures))

    def __repr__(self) -> str:
        return f"WorkingCalendar(version={self._version!r})"

    @property
    def version(self) -> str:
        """Identifies the bank-holiday data and the closure set; keep it with each deadline."""
        return self._version

    @property
    def closure_days(self) -> frozenset[date]:
        """The partnership's own closure days."""
        return self._closures

    def _holidays_in(self, year: int) -> frozenset[date]:
        cached = self._bank_holidays.get(year)
        if cached is None:
            data = holidays.country_holidays("GB", subdiv="ENG", years=year)
            cached = frozenset(data.keys())
            self._bank_holidays[year] = cached
        return cached

    def is_working_day(self, d: date) -> bool:
        """Monday to Friday, not an England and Wales bank holiday, not a closure day."""
        if isinstance(d, datetime):
            raise TypeError("is_working_day takes a date, not a datetime")
        return d.weekday() < 5 and d not in self._closures and d not in self._holidays_in(d.year)

    def _next_working_day(self, d: date) -> date:
        d += _ONE_DAY
        while not self.is_working_day(d):
            d += _ONE_DAY
        return d

    def _working_start(self, start: datetime) -> tuple[date, time]:
        """London day and time of day a working-day count starts from."""
        local = _to_london(start)
        if self.is_working_day(local.date()):
            return local.date(), local.time()
        return self._next_working_day(local.date()), time(0, 0)

    def add(self, start: datetime, amount: int, unit: TimeUnit) -> datetime:
        """The deadline `amount` units after `start`, as an aware UTC datetime.

        WORKING_DAYS: in London time, a start on a non-working day moves to 00:00 of the
        next working day; then step `amount` working days keeping the local time of day.
        CALENDAR_DAYS: step `amount` London calendar days keeping the local time of day.
        HOURS: exact elapsed hours. Amount 0 on a working day returns `start` unchanged.
        Negative amounts and naive starts raise ValueError.
        """
        local = _to_london(start)
        if amount < 0:
            raise ValueError(f"amount must be >= 0, got {amount}")
        if unit is TimeUnit.HOURS:
            return start.astimezone(UTC) + timedelta(hours=amount)
        if unit is TimeUnit.CALENDAR_DAYS:
            day, time_of_day = local.date() + timedelta(days=amount), local.time()
        elif unit is TimeUnit.WORKING_DAYS:
            day, time_of_day = self._working_start(start)
            for _ in range(amount):
                day = self._next_working_day(day)
        else:
            raise ValueError(f"unknown time unit: {unit!r}")
        if day == local.date():  # nothing stepped or moved: keep the exact instant
            return start.astimezone(UTC)
        return _from_london(day, time_of_day)

    def working_days_between(self, start: datetime, end: datetime) -> int:
        """The largest n with add(start, n, WORKING_DAYS) <= end (0 if there is none)."""
        _to_london(end)
        day, time_of_day = self._working_start(start)
        count = 0
        while True:
            day = self._next_working_day(day)
            if _from_london(day, time_of_day) > end:
                return count
            count += 1
