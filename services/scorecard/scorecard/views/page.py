"""The one-page scorecard of an alliance for a period, put together from the board's rows as
one snapshot read them; and the scorecard as a whole, as opening it or new thresholds answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from concord.commands import Version
from concord.membership import KnownAlliance
from scorecard.domain.rules import StatusThresholds
from scorecard.domain.state import Scorecard
from scorecard.views.benefits import BalanceOfBenefits, balance_points, balance_through
from scorecard.views.initiatives import InitiativeCard, initiative_card
from scorecard.views.kpis import ByDimension, KpiCard, kpi_card, kpi_view, series
from scorecard.views.strategy import StrategyMap, strategy_map
from scorecard.views.versions import Versioned, versions


class ScorecardSummary(Versioned):
    alliance_id: UUID
    currency: str
    thresholds: StatusThresholds
    kpis: int = Field(description="The KPIs your organisation can see")
    objectives: int
    initiatives: int


class ScorecardPage(Versioned):
    """The one-page scorecard of an alliance for a period."""

    alliance_id: UUID
    alliance_name: str
    period: str
    currency: str
    thresholds: StatusThresholds
    goals: list[KpiCard] = Field(description="The overall goals (headline KPIs)")
    leading: ByDimension
    lagging: ByDimension
    initiatives: list[InitiativeCard]
    balance_of_benefits: BalanceOfBenefits
    strategy_map: StrategyMap


class Board(BaseModel):
    """What every read starts from: the alliance, and its scorecard's row."""

    alliance: KnownAlliance
    currency: str
    thresholds: StatusThresholds
    version: int
    private_version: int  # the caller's organisation's

    @property
    def partners(self) -> list[tuple[str, str]]:
        return [(p.org_id, p.name) for p in self.alliance.partners]


@dataclass(frozen=True)
class BoardRows:
    """Every row the page shows, read in one snapshot (the caller's view: no private KPI of
    another partner among them)."""

    kpis: Sequence[Any]
    numbers: Sequence[Any]
    initiatives: Sequence[Any]
    progress: Sequence[Any]
    balance: Sequence[Any]
    objectives: Sequence[Any]
    links: Sequence[Any]


def summary(state: Scorecard, org: str, version: Version) -> ScorecardSummary:
    assert state.alliance_id is not None
    return ScorecardSummary(
        alliance_id=state.alliance_id,
        currency=state.currency,
        thresholds=state.thresholds,
        kpis=sum(k.visible_to(org) for k in state.kpis.values()),
        objectives=len(state.objectives),
        initiatives=len(state.initiatives),
        **versions(version),
    )


def page_of(board: Board, rows: BoardRows, view_period: str, today: date) -> ScorecardPage:
    goals, leading, lagging = _kpi_cards(board, rows, view_period)
    reports: dict[UUID, list[Any]] = {}
    for row in rows.progress:
        reports.setdefault(row.initiative_id, []).append(row)
    balance = balance_points(rows.balance, board.partners, board.thresholds)
    return ScorecardPage(
        alliance_id=board.alliance.id,
        alliance_name=board.alliance.name,
        period=view_period,
        currency=board.currency,
        thresholds=board.thresholds,
        version=board.version,
        private_version=board.private_version,
        goals=goals,
        leading=leading,
        lagging=lagging,
        initiatives=[
            initiative_card(row, reports.get(row.initiative_id, []), view_period, today)
            for row in rows.initiatives
        ],
        balance_of_benefits=balance_through(
            balance, board.partners, view_period, board.currency, board.thresholds
        ),
        strategy_map=strategy_map(rows.objectives, rows.links, {row.kpi_id for row in rows.kpis}),
    )


def _kpi_cards(
    board: Board, rows: BoardRows, view_period: str
) -> tuple[list[KpiCard], ByDimension, ByDimension]:
    """The goals (headline KPIs), then the leading and the lagging KPIs by dimension."""
    by_kpi: dict[UUID, list[Any]] = {}
    for row in rows.numbers:
        by_kpi.setdefault(row.kpi_id, []).append(row)
    goals: list[KpiCard] = []
    leading, lagging = ByDimension(), ByDimension()
    for row in rows.kpis:
        kpi = kpi_view(row)
        card = kpi_card(kpi, series(kpi, by_kpi.get(kpi.id, []), board.thresholds), view_period)
        if kpi.headline:
            goals.append(card)
        else:
            group = leading if kpi.kind == "leading" else lagging
            getattr(group, kpi.dimension.value).append(card)
    return goals, leading, lagging
