"""Reporting periods: a month (`2026-11`) or a quarter (`2026-Q4`).

The scorecard is reviewed jointly every month; some KPIs are only measured per quarter.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from concord.domain import YEAR_PATTERN

# Years as the kernel's dates have them (2000-2199), so every date a caller sends has a period.
PERIOD_PATTERN = rf"^{YEAR_PATTERN}-(0[1-9]|1[0-2]|Q[1-4])$"
Period = Annotated[str, StringConstraints(pattern=PERIOD_PATTERN)]


class Cadence(StrEnum):
    month = "month"
    quarter = "quarter"


def cadence_of(period: str) -> Cadence:
    return Cadence.quarter if "Q" in period else Cadence.month


def period_of(day: date, cadence: Cadence) -> str:
    if cadence is Cadence.quarter:
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}-{day.month:02d}"


def months_in(period: str) -> tuple[str, ...]:
    year, part = period.split("-")
    if part.startswith("Q"):
        first = (int(part[1]) - 1) * 3 + 1
        return tuple(f"{year}-{m:02d}" for m in range(first, first + 3))
    return (period,)


def last_month(period: str) -> str:
    return months_in(period)[-1]


def order(period: str) -> int:
    """Sorts periods by when they end (a quarter sorts with its last month)."""
    year, month = last_month(period).split("-")
    return int(year) * 12 + int(month)


def start_of(period: str) -> date:
    year, month = (int(x) for x in months_in(period)[0].split("-"))
    return date(year, month, 1)


def end_of(period: str) -> date:
    year, month = (int(x) for x in last_month(period).split("-"))
    following = date(year + month // 12, month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def first_instant_after(period: str) -> datetime:
    """When a period is over: midnight UTC at the start of the day after its last day."""
    return datetime.combine(end_of(period) + timedelta(days=1), time(0), tzinfo=UTC)


def as_seen_in(view: str, cadence: Cadence) -> str:
    """Which of a KPI's periods a view of `view` shows: the quarter containing a month, or,
    for a monthly KPI in a quarterly view, the quarter's last month."""
    if cadence is Cadence.quarter:
        year, month = last_month(view).split("-")
        return period_of(date(int(year), int(month), 1), Cadence.quarter)
    return last_month(view)
