"""What the scorecard read API answers, shaped for a frontend to render directly, and how the
answers are put together from read-model rows. Status and direction are derived here with
the domain's own rules (`scorecard.domain.rules`), so the page and the events agree."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

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
    imbalance_index,
    shares,
    status_of,
)
from scorecard.domain.scorecard import (
    BenefitKind,
    Dimension,
    InitiativeStatus,
    KpiKind,
    Visibility,
)


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


class InitiativeCard(BaseModel):
    id: UUID
    name: str
    description: str | None
    dimension: Dimension
    owner_org: str
    owner_name: str
    leading_indicator: str
    due_date: date
    completion: int = Field(description="Percent complete as of the period's end")
    status: InitiativeStatus
    direction: Direction | None = Field(description="Completion against the previous period")
    as_of: date | None = Field(description="The progress report shown")
    overdue: bool


class PartnerShare(BaseModel):
    org_id: str
    name: str
    amount: Decimal
    share: Decimal


class BalanceOfBenefits(BaseModel):
    """Shared benefits to date (cumulative through the period) and how evenly they fall."""

    currency: str
    through_period: str
    partners: list[PartnerShare]
    imbalance_index: Decimal = Field(description="0 = equal shares, 1 = one partner gains all")
    threshold: Decimal
    imbalanced: bool


class ObjectiveNode(BaseModel):
    id: UUID
    name: str
    description: str | None
    dimension: Dimension
    kpi_ids: list[UUID]
    drives: list[UUID] = Field(description="The objectives this one is a cause of")
    driven_by: list[UUID]


class StrategyMap(BaseModel):
    objectives: list[ObjectiveNode]


class ScorecardPage(BaseModel):
    """The one-page scorecard of an alliance for a period."""

    alliance_id: UUID
    alliance_name: str
    period: str
    currency: str
    thresholds: StatusThresholds
    version: int
    goals: list[KpiCard] = Field(description="The overall goals (headline KPIs)")
    leading: ByDimension
    lagging: ByDimension
    initiatives: list[InitiativeCard]
    balance_of_benefits: BalanceOfBenefits
    strategy_map: StrategyMap


class SeriesPoint(BaseModel):
    period: str
    target: Decimal | None
    actual: Decimal | None
    attainment: Decimal | None
    status: Status
    direction: Direction | None


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


class ProgressReport(BaseModel):
    as_of: date
    completion: int
    status: InitiativeStatus
    note: str | None
    by_org: str
    by: str
    at: datetime


class InitiativeHistory(BaseModel):
    initiative: InitiativeCard
    progress: list[ProgressReport]


class BenefitView(BaseModel):
    id: UUID
    partner_org: str
    kind: BenefitKind
    amount: Decimal
    currency: str
    period: str
    evidence: str
    visibility: Visibility
    recorded_by_org: str
    recorded_by: str
    recorded_at: datetime


class BalancePoint(BaseModel):
    period: str
    partners: list[PartnerShare] = Field(description="Cumulative through the period")
    imbalance_index: Decimal
    imbalanced: bool


class BalanceHistory(BaseModel):
    currency: str
    threshold: Decimal
    points: list[BalancePoint]


# --- assembling ---------------------------------------------------------------------------


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


def series(kpi: KpiView, numbers: Iterable[Any], thresholds: StatusThresholds) -> list[SeriesPoint]:
    """A KPI's periods in order, each judged; direction looks at the actuals before it."""
    points: list[SeriesPoint] = []
    earlier: list[Decimal] = []
    for row in sorted(numbers, key=lambda r: r.period_order):
        points.append(
            SeriesPoint(
                period=row.period,
                target=row.target,
                actual=row.actual,
                attainment=attainment(row.target, row.actual, kpi.good_direction),
                status=status_of(row.target, row.actual, kpi.good_direction, thresholds),
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


def initiative_card(
    row: Any, reports: Sequence[Any], view_period: str, today: date
) -> InitiativeCard:
    """An initiative as of the end of the view's period, its direction against the end of
    the period before; overdue once its due date has passed (by the period's end or today,
    whichever comes first) unfinished."""
    end = periods.end_of(view_period)
    now = _latest(reports, end)
    before = _latest(reports, periods.start_of(view_period) - timedelta(days=1))
    completion = now.completion if now else 0
    return InitiativeCard(
        id=row.initiative_id,
        name=row.name,
        description=row.description,
        dimension=row.dimension,
        owner_org=row.owner_org,
        owner_name=row.owner_name,
        leading_indicator=row.leading_indicator,
        due_date=row.due_date,
        completion=completion,
        status=now.status if now else InitiativeStatus.planned,
        direction=direction_of(
            [Decimal(before.completion if before else 0)], Decimal(completion), Decimal(0)
        )
        if now
        else None,
        as_of=now.as_of if now else None,
        overdue=row.due_date < min(end, today) and completion < 100,
    )


def _latest(reports: Sequence[Any], by: date) -> Any:
    upto = [r for r in reports if r.as_of <= by]
    return max(upto, key=lambda r: (r.as_of, r.stream_version)) if upto else None


def balance_points(
    rows: Iterable[Any], partners: Sequence[tuple[str, str]], thresholds: StatusThresholds
) -> list[BalancePoint]:
    """Cumulative shares after each period that has benefits."""
    by_period: dict[str, dict[str, Decimal]] = defaultdict(dict)
    order: dict[str, int] = {}
    for row in rows:
        by_period[row.period][row.partner_org] = row.amount
        order[row.period] = row.period_order
    orgs = [org for org, _ in partners]
    names = dict(partners)
    running: dict[str, Decimal] = defaultdict(Decimal)
    points = []
    for period in sorted(by_period, key=order.__getitem__):
        for org, amount in by_period[period].items():
            running[org] += amount
        points.append(_point(period, running, orgs, names, thresholds))
    return points


def _point(
    period: str,
    amounts: dict[str, Decimal],
    orgs: list[str],
    names: dict[str, str],
    thresholds: StatusThresholds,
) -> BalancePoint:
    split = shares(amounts, orgs)
    index = imbalance_index(amounts, orgs)
    return BalancePoint(
        period=period,
        partners=[
            PartnerShare(
                org_id=org, name=names[org], amount=amounts.get(org, Decimal(0)), share=split[org]
            )
            for org in orgs
        ],
        imbalance_index=index,
        imbalanced=index >= thresholds.imbalance_threshold,
    )


def balance_through(
    points: Sequence[BalancePoint],
    partners: Sequence[tuple[str, str]],
    view_period: str,
    currency: str,
    thresholds: StatusThresholds,
) -> BalanceOfBenefits:
    upto = [p for p in points if periods.order(p.period) <= periods.order(view_period)]
    point = (
        upto[-1]
        if upto
        else _point(view_period, {}, [o for o, _ in partners], dict(partners), thresholds)
    )
    return BalanceOfBenefits(
        currency=currency,
        through_period=view_period,
        partners=point.partners,
        imbalance_index=point.imbalance_index,
        threshold=thresholds.imbalance_threshold,
        imbalanced=point.imbalanced,
    )


def strategy_map(
    objectives: Iterable[Any], links: Iterable[Any], visible: set[UUID]
) -> StrategyMap:
    drives: dict[UUID, list[UUID]] = defaultdict(list)
    driven_by: dict[UUID, list[UUID]] = defaultdict(list)
    for link in sorted(links, key=lambda r: r.position):
        drives[link.cause_id].append(link.effect_id)
        driven_by[link.effect_id].append(link.cause_id)
    return StrategyMap(
        objectives=[
            ObjectiveNode(
                id=o.objective_id,
                name=o.name,
                description=o.description,
                dimension=o.dimension,
                # A private KPI of another partner is not even named here.
                kpi_ids=[k for k in o.kpi_ids if k in visible],
                drives=drives[o.objective_id],
                driven_by=driven_by[o.objective_id],
            )
            for o in sorted(objectives, key=lambda r: r.position)
        ]
    )


# --- CSV ----------------------------------------------------------------------------------

CSV_COLUMNS = (
    "section",
    "dimension",
    "name",
    "kind",
    "owner_org",
    "visibility",
    "unit",
    "currency",
    "period",
    "target",
    "actual",
    "attainment",
    "status",
    "direction",
    "completion",
    "due_date",
    "share",
)


def page_as_csv(page: ScorecardPage) -> str:
    """The one-page scorecard as rows: goals, leading and lagging KPIs, initiatives, and
    each partner's share of the benefits."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()

    def kpi_row(section: str, card: KpiCard) -> dict[str, Any]:
        return {
            "section": section,
            "dimension": card.dimension.value,
            "name": card.name,
            "kind": card.kind.value,
            "owner_org": card.owner_org,
            "visibility": card.visibility.value,
            "unit": card.unit,
            "currency": card.currency,
            "period": card.period,
            "target": card.target,
            "actual": card.actual,
            "attainment": card.attainment,
            "status": card.status.value,
            "direction": card.direction.value if card.direction else "",
        }

    for card in page.goals:
        writer.writerow(_safe(kpi_row("goal", card)))
    for section, groups in (("leading", page.leading), ("lagging", page.lagging)):
        for dimension in Dimension:
            for card in getattr(groups, dimension.value):
                writer.writerow(_safe(kpi_row(section, card)))
    for initiative in page.initiatives:
        writer.writerow(
            _safe(
                {
                    "section": "initiative",
                    "dimension": initiative.dimension.value,
                    "name": initiative.name,
                    "owner_org": initiative.owner_org,
                    "period": page.period,
                    "status": initiative.status.value,
                    "direction": initiative.direction.value if initiative.direction else "",
                    "completion": initiative.completion,
                    "due_date": initiative.due_date.isoformat(),
                }
            )
        )
    for partner in page.balance_of_benefits.partners:
        writer.writerow(
            _safe(
                {
                    "section": "benefit",
                    "name": partner.name,
                    "owner_org": partner.org_id,
                    "currency": page.balance_of_benefits.currency,
                    "period": page.balance_of_benefits.through_period,
                    "actual": partner.amount,
                    "share": partner.share,
                }
            )
        )
    return out.getvalue()


def _safe(row: dict[str, Any]) -> dict[str, str]:
    """Text a partner typed cannot become a spreadsheet formula (CSV injection)."""
    cleaned = {}
    for key, value in row.items():
        text = "" if value is None else str(value)
        if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
            text = "'" + text
        cleaned[key] = text
    return cleaned


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True
