"""Calendar arithmetic of licenses, in the operator's time zone.

A license is valid on whole local days: from ``start`` 00:00 to ``end`` 00:00 (``end`` exclusive)
in the operator's time zone. Rules (docs/licensing.md):

* an agreement concluded at any instant of local day D starts on D + 1 (T-02);
* N months after a date keep its day of month; when that day does not exist in the target month
  (31 April, 30 February, 29 February of a common year) the period runs to the first day of the
  following month, so the licensee always gets the whole last month;
* the monthly quota period is the local calendar month (counters reset on the 1st, 00:00 local).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(at_ms: int, tz: ZoneInfo) -> date:
    """The operator's calendar date at the instant ``at_ms``."""
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(tz).date()


def day_start_ms(day: date, tz: ZoneInfo) -> int:
    """The instant local ``day`` begins (00:00 in the operator's zone), in ms since the epoch."""
    local = datetime(day.year, day.month, day.day, tzinfo=tz)
    return int(local.astimezone(UTC).timestamp() * 1000)


def start_after_conclusion(concluded_ms: int, tz: ZoneInfo) -> date:
    """T-02: the license starts the calendar day after the agreement is concluded (operator's zone)."""
    return local_date(concluded_ms, tz) + DAY


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months; a missing day rolls to the next month's 1st."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    if start.day <= last:
        return date(year, month, start.day)
    # The day does not exist in the target month: the period ends with that month.
    return date(year, month, last) + DAY


def period_end(start: date, unit: str, count: int) -> date:
    """The exclusive end of ``count`` periods of ``unit`` ("month" or "day") from ``start``."""
    if count < 0:
        raise ValueError("count must not be negative")
    if unit == "month":
        return add_months(start, count)
    if unit == "day":
        return start + timedelta(days=count)
    raise ValueError(f"unknown period unit {unit!r}")


def days_between(start: date, end: date) -> int:
    return (end - start).days


def month_key(at_ms: int, tz: ZoneInfo) -> str:
    """The quota period (local calendar month) of an instant: ``YYYY-MM``."""
    day = local_date(at_ms, tz)
    return f"{day.year:04d}-{day.month:02d}"


def next_month_start_ms(at_ms: int, tz: ZoneInfo) -> int:
    """When the quota period containing ``at_ms`` ends (the next local 1st, 00:00)."""
    day = local_date(at_ms, tz)
    first = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return day_start_ms(first, tz)


MIN_YEAR, MAX_YEAR = 1970, 9000  # far enough for any license; keeps date arithmetic in range
MAX_DAYS = 36_600  # about a hundred years: the longest grant, extension or trial


def parse_date(text: str) -> date:
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"{text!r}: dates from {MIN_YEAR} to {MAX_YEAR}")
    return value
