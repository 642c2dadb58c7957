"""The benefits ledger and the balance of benefits as the API shows them: entries, each
partner's cumulative share after each period, and how evenly the shares fall."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from scorecard.domain import periods
from scorecard.domain.benefits import BenefitEntry, BenefitKind
from scorecard.domain.rules import StatusThresholds, imbalance_index, shares
from scorecard.domain.state import Visibility
from scorecard.views.versions import Versioned


class RecordedBenefit(Versioned):
    id: UUID
    entry: BenefitEntry


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


class BalancePoint(BaseModel):
    period: str
    partners: list[PartnerShare] = Field(description="Cumulative through the period")
    imbalance_index: Decimal
    imbalanced: bool


class BalanceHistory(BaseModel):
    currency: str
    threshold: Decimal
    points: list[BalancePoint]


def benefit_view(row: Any) -> BenefitView:
    return BenefitView(
        id=row.entry_id,
        partner_org=row.partner_org,
        kind=row.kind,
        amount=row.amount,
        currency=row.currency,
        period=row.period,
        evidence=row.evidence,
        visibility=Visibility(row.visibility),
        recorded_by_org=row.by_org,
        recorded_by=row.by_sub,
        recorded_at=row.recorded_at,
    )


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
