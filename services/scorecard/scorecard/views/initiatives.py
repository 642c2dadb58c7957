"""Initiatives as the API shows them: where one stands after a progress report, its card as
of a period's end (completion, direction, overdue), and every progress report on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from concord.commands import Version
from scorecard.domain import periods
from scorecard.domain.initiatives import InitiativeStatus
from scorecard.domain.rules import Direction, direction_of
from scorecard.domain.state import Dimension, Scorecard
from scorecard.views.versions import Versioned, versions


class InitiativeSummary(BaseModel):
    id: UUID
    name: str
    owner_org: str
    completion: int = Field(description="Percent complete as of the progress report shown")
    as_of: date | None = Field(description="The progress report shown")


class InitiativeState(InitiativeSummary, Versioned):
    """An initiative as its launch or a progress report answers it: its latest report."""


class InitiativeCard(InitiativeSummary):
    """An initiative as of a period's end."""

    description: str | None
    dimension: Dimension
    owner_name: str
    leading_indicator: str
    due_date: date
    status: InitiativeStatus
    direction: Direction | None = Field(description="Completion against the previous period")
    overdue: bool


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


def initiative_state(state: Scorecard, initiative_id: UUID, version: Version) -> InitiativeState:
    initiative = state.initiatives[initiative_id]
    return InitiativeState(
        id=initiative_id,
        name=initiative.name,
        owner_org=initiative.owner_org,
        completion=initiative.completion,
        as_of=initiative.as_of,
        **versions(version),
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


def history_of(
    row: Any, reports: Sequence[Any], view_period: str, today: date
) -> InitiativeHistory:
    return InitiativeHistory(
        initiative=initiative_card(row, reports, view_period, today),
        progress=[
            ProgressReport(
                as_of=r.as_of,
                completion=r.completion,
                status=r.status,
                note=r.note,
                by_org=r.by_org,
                by=r.by_sub,
                at=r.at,
            )
            for r in reports
        ],
    )
