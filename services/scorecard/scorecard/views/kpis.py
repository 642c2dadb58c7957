"""KPIs as the API shows them: a definition, a KPI's numbers in one period judged, a card on
the page, and its history (each period judged, every change with who made it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from concord.commands import Version
from scorecard.domain import periods
from scorecard.domain.periods import Cadence
from scorecard.domain.pipeline import Metric
from scorecard.domain.rules import (
    Direction,
    GoodDirection,
    Status,
    StatusThresholds,
    attainment,
    direction_of,
    status_of,
)
from scorecard.domain.state import Dimension, KpiKind, Scorecard, Visibility
from scorecard.views.versions import Versioned, versions


class KpiView(BaseModel):
    id: UUID
    name: str
    description: str | None
    dimension: Dimension
    kind: KpiKind
    unit: str
    currency: str | None
    good_direction: GoodDirection
    owner_org: str
    visibility: Visibility
    cadence: Cadence
    headline: bool
    feed: Metric | None


class DefinedKpi(KpiView, Versioned):
    """A KPI as its definition answers it."""


class KpiCard(KpiView):
    """A KPI in one period: its numbers and how they are judged."""

    period: str = Field(description="The KPI's own period shown (a quarter for quarterly KPIs)")
    target: Decimal | None
    actual: Decimal | None
    attainment: Decimal | None = Field(description="Actual against target; 1 = met")
    status: Status
    direction: Direction | None = Field(
        description="The actual against the mean of up to three earlier periods"
    )


class ByDimension(BaseModel):
    commercial: list[KpiCard] = []
    technical: list[KpiCard] = []
    strategic: list[KpiCard] = []
    cultural: list[KpiCard] = []
    operational: list[KpiCard] = []


class PeriodNumbers(BaseModel):
    """A KPI's numbers in one period, and how they are judged."""

    period: str
    target: Decimal | None
    actual: Decimal | None
    attainment: Decimal | None
    status: Status


class SeriesPoint(PeriodNumbers):
    direction: Direction | None


class KpiNumbers(PeriodNumbers, Versioned):
    """A KPI period's numbers as a target or an actual answers them."""

    kpi_id: UUID


class KpiChange(BaseModel):
    at: datetime
    period: str
    change: str = Field(
        description="target_set, actual_recorded, actual_corrected, went_off_track, recovered"
    )
    old_value: Decimal | None
    new_value: Decimal | None
    status: Status | None
    source: str | None
    note: str | None
    by_org: str | None
    by: str | None


class KpiHistory(BaseModel):
    kpi: KpiView
    series: list[SeriesPoint]
    changes: list[KpiChange] = Field(description="Every change, corrections included, oldest first")


def judged(
    target: Decimal | None,
    actual: Decimal | None,
    good: GoodDirection,
    thresholds: StatusThresholds,
) -> dict[str, Any]:
    """A period's numbers with their attainment and status, the same for every answer."""
    return {
        "target": target,
        "actual": actual,
        "attainment": attainment(target, actual, good),
        "status": status_of(target, actual, good, thresholds),
    }


def kpi_view(row: Any) -> KpiView:
    return KpiView(
        id=row.kpi_id,
        name=row.name,
        description=row.description,
        dimension=row.dimension,
        kind=row.kind,
        unit=row.unit,
        currency=row.currency,
        good_direction=row.good_direction,
        owner_org=row.owner_org,
        visibility=row.visibility,
        cadence=row.cadence,
        headline=row.headline,
        feed=row.feed,
    )


def kpi_numbers(state: Scorecard, kpi_id: UUID, period: str, version: Version) -> KpiNumbers:
    numbers = state.numbers_of(kpi_id, period)
    good = state.kpis[kpi_id].good_direction
    return KpiNumbers(
        kpi_id=kpi_id,
        period=period,
        **judged(numbers.target, numbers.actual, good, state.thresholds),
        **versions(version),
    )


def series(kpi: KpiView, numbers: Iterable[Any], thresholds: StatusThresholds) -> list[SeriesPoint]:
    """A KPI's periods in order, each judged; direction looks at the actuals before it."""
    points: list[SeriesPoint] = []
    earlier: list[Decimal] = []
    for row in sorted(numbers, key=lambda r: r.period_order):
        points.append(
            SeriesPoint(
                period=row.period,
                **judged(row.target, row.actual, kpi.good_direction, thresholds),
                direction=direction_of(earlier, row.actual, thresholds.flat_band),
            )
        )
        if row.actual is not None:
            earlier.append(row.actual)
    return points


def kpi_card(kpi: KpiView, points: Sequence[SeriesPoint], view_period: str) -> KpiCard:
    period = periods.as_seen_in(view_period, kpi.cadence)
    point = next((p for p in points if p.period == period), None)
    return KpiCard(
        **kpi.model_dump(),
        period=period,
        target=point.target if point else None,
        actual=point.actual if point else None,
        attainment=point.attainment if point else None,
        status=point.status if point else Status.no_target,
        direction=point.direction if point else None,
    )


def history_of(
    kpi: KpiView, numbers: Iterable[Any], changes: Iterable[Any], thresholds: StatusThresholds
) -> KpiHistory:
    return KpiHistory(
        kpi=kpi,
        series=series(kpi, numbers, thresholds),
        changes=[
            KpiChange(
                at=c.at,
                period=c.period,
                change=c.change,
                old_value=c.old_value,
                new_value=c.new_value,
                status=c.status,
                source=c.source,
                note=c.note,
                by_org=c.by_org,
                by=c.by_sub,
            )
            for c in changes
        ],
    )
