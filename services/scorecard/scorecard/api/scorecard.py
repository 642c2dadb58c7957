"""The scorecard itself: opening it, changing its thresholds, and the one-page scorecard for
a period (as JSON or CSV), read in one snapshot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from sqlalchemy import TextClause
from starlette.responses import JSONResponse, Response

from concord.commands import Version
from concord.domain import Actor, NotFound
from concord.http import CallerDep, RuntimeDep
from concord.runtime import ServiceRuntime
from scorecard.api import queries
from scorecard.api.alliances import COMMAND_ERRORS, Commands, known_alliance
from scorecard.api.board import (
    NO_BOARD,
    MinVersion,
    PeriodQuery,
    board_of,
    board_params,
    board_row,
    current_month,
    today,
)
from scorecard.domain import periods
from scorecard.domain.opening import ChangeThresholds, OpenScorecard, ScorecardSetup
from scorecard.domain.rules import StatusThresholds
from scorecard.domain.state import Scorecard
from scorecard.views import export
from scorecard.views.page import BoardRows, ScorecardPage, ScorecardSummary, page_of, summary

router = APIRouter(prefix="/alliances", tags=["scorecard"])


def _summary(org: str) -> Callable[[Scorecard, Version], ScorecardSummary]:
    return lambda state, version: summary(state, org, version)


@router.post(
    "/{alliance_id}/scorecard",
    operation_id="scorecard-open",
    summary="Open the alliance's scorecard",
    status_code=201,
    response_model=ScorecardSummary,
    responses=COMMAND_ERRORS,
)
async def open_scorecard(
    alliance_id: UUID, setup: ScorecardSetup, commands: Commands
) -> JSONResponse:
    caller = commands.caller
    return await commands.execute(
        alliance_id,
        lambda partners: OpenScorecard(alliance_id, setup, partners, caller),
        _summary(caller.org),
        status_code=201,
        location=f"/alliances/{alliance_id}/scorecard",
    )


@router.post(
    "/{alliance_id}/scorecard/thresholds",
    operation_id="scorecard-change-thresholds",
    summary="Change how KPIs and the balance of benefits are judged",
    response_model=ScorecardSummary,
    responses=COMMAND_ERRORS,
)
async def change_thresholds(
    alliance_id: UUID, thresholds: StatusThresholds, commands: Commands
) -> JSONResponse:
    caller = commands.caller
    return await commands.execute(
        alliance_id, ChangeThresholds(thresholds, caller), _summary(caller.org)
    )


async def _page(
    runtime: ServiceRuntime,
    alliance_id: UUID,
    caller: Actor,
    period: str | None,
    min_version: str | None,
) -> ScorecardPage:
    view_period = period or current_month()
    # Up to the end of the quarter: a quarterly KPI in a month's view shows that quarter.
    through = periods.order(periods.as_seen_in(view_period, periods.Cadence.quarter))
    params = {"id": alliance_id, "org": caller.org, "through": through}
    alliance = await known_alliance(runtime, alliance_id, caller)
    wanted = board_params(alliance_id, caller, min_version)
    if min_version and await board_row(runtime, wanted) is None:
        raise NotFound(NO_BOARD)
    # One snapshot for the whole page, so the version it shows is the version of every row.
    async with runtime.snapshot() as conn:
        row = (await conn.execute(queries.board, board_params(alliance_id, caller, None))).first()
        if row is None:
            raise NotFound(NO_BOARD)

        async def read(statement: TextClause) -> Sequence[Any]:
            return (await conn.execute(statement, params)).all()

        rows = BoardRows(
            kpis=await read(queries.kpis),
            numbers=await read(queries.numbers_of_kpis),
            initiatives=await read(queries.initiatives),
            progress=await read(queries.progress),
            balance=await read(queries.balance),
            objectives=await read(queries.objectives),
            links=await read(queries.links),
        )
    return page_of(board_of(alliance, row), rows, view_period, today())


@router.get(
    "/{alliance_id}/scorecard",
    operation_id="scorecard-page",
    summary="The one-page scorecard for a period",
    description="Goals, leading and lagging KPIs by dimension (target, actual, status, "
    "direction), initiatives (completion, direction), the balance of benefits and the "
    "strategy map, as of the period's end.",
    response_model=ScorecardPage,
)
async def scorecard_page(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    period: PeriodQuery = None,
    min_version: MinVersion = None,
) -> ScorecardPage:
    return await _page(runtime, alliance_id, caller, period, min_version)


@router.get(
    "/{alliance_id}/scorecard/export.csv",
    operation_id="scorecard-export-csv",
    summary="The one-page scorecard for a period, as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def export_csv(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    period: PeriodQuery = None,
    min_version: MinVersion = None,
) -> Response:
    page = await _page(runtime, alliance_id, caller, period, min_version)
    filename = f"scorecard-{alliance_id}-{page.period}.csv"
    return Response(
        export.page_as_csv(page),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
