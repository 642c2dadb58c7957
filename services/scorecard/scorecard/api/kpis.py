"""KPIs: defining one, its owner organisation setting targets and recording actuals, and
reading a KPI's definition and history (private KPIs only for their own organisation)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

from fastapi import APIRouter
from starlette.responses import JSONResponse

from concord.commands import Version
from concord.domain import NotFound
from concord.http import CallerDep, RuntimeDep
from scorecard.api import queries
from scorecard.api.alliances import COMMAND_ERRORS, Commands
from scorecard.api.board import MinVersion, open_board
from scorecard.domain.kpi_numbers import KpiActual, KpiTarget, RecordKpiActual, SetKpiTarget
from scorecard.domain.kpis import DefineKpi, KpiDefinition
from scorecard.domain.state import Scorecard
from scorecard.views.kpis import (
    DefinedKpi,
    KpiHistory,
    KpiNumbers,
    KpiView,
    history_of,
    kpi_numbers,
    kpi_view,
)
from scorecard.views.versions import versions

router = APIRouter(prefix="/alliances", tags=["scorecard"])


def _numbers(kpi_id: UUID, period: str) -> Callable[[Scorecard, Version], KpiNumbers]:
    return lambda state, version: kpi_numbers(state, kpi_id, period, version)


@router.post(
    "/{alliance_id}/scorecard/kpis",
    operation_id="scorecard-define-kpi",
    summary="Define a KPI",
    status_code=201,
    response_model=DefinedKpi,
    responses=COMMAND_ERRORS,
)
async def define_kpi(
    alliance_id: UUID, definition: KpiDefinition, commands: Commands
) -> JSONResponse:
    kpi_id = uuid4()
    return await commands.execute(
        alliance_id,
        lambda partners: DefineKpi(kpi_id, definition, partners, commands.caller),
        lambda state, version: DefinedKpi(
            id=kpi_id, **definition.model_dump(), **versions(version)
        ),
        status_code=201,
        location=f"/alliances/{alliance_id}/scorecard/kpis/{kpi_id}",
    )


@router.post(
    "/{alliance_id}/scorecard/kpis/{kpi_id}/targets",
    operation_id="scorecard-set-kpi-target",
    summary="Set a KPI's target for a period (its owner organisation only)",
    response_model=KpiNumbers,
    responses=COMMAND_ERRORS,
)
async def set_kpi_target(
    alliance_id: UUID, kpi_id: UUID, target: KpiTarget, commands: Commands
) -> JSONResponse:
    command = SetKpiTarget(kpi_id, target, commands.caller)
    return await commands.execute(alliance_id, command, _numbers(kpi_id, target.period))


@router.post(
    "/{alliance_id}/scorecard/kpis/{kpi_id}/actuals",
    operation_id="scorecard-record-kpi-actual",
    summary="Record a KPI's actual for a period, or correct it (its owner organisation only)",
    description="Late data for an ended period is welcome; a correction keeps the previous "
    "value in the KPI's history.",
    response_model=KpiNumbers,
    responses=COMMAND_ERRORS,
)
async def record_kpi_actual(
    alliance_id: UUID, kpi_id: UUID, actual: KpiActual, commands: Commands
) -> JSONResponse:
    command = RecordKpiActual(kpi_id, actual, commands.caller)
    return await commands.execute(alliance_id, command, _numbers(kpi_id, actual.period))


@router.get(
    "/{alliance_id}/scorecard/kpis/{kpi_id}",
    operation_id="scorecard-kpi",
    summary="A KPI's definition",
    response_model=KpiView,
)
async def get_kpi(
    alliance_id: UUID,
    kpi_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: MinVersion = None,
) -> KpiView:
    await open_board(runtime, alliance_id, caller, min_version)
    params = {"id": alliance_id, "kpi_id": kpi_id, "org": caller.org}
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(queries.one_kpi, params)).first()
    if row is None:
        raise NotFound("No such KPI on this scorecard")
    return kpi_view(row)


@router.get(
    "/{alliance_id}/scorecard/kpis/{kpi_id}/history",
    operation_id="scorecard-kpi-history",
    summary="A KPI over time: each period judged, and every change with who made it",
    response_model=KpiHistory,
)
async def kpi_history(
    alliance_id: UUID,
    kpi_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: MinVersion = None,
) -> KpiHistory:
    params = {"id": alliance_id, "kpi_id": kpi_id, "org": caller.org}
    board = await open_board(runtime, alliance_id, caller, min_version)
    async with runtime.snapshot() as conn:
        row = (await conn.execute(queries.one_kpi, params)).first()
        if row is None:
            raise NotFound("No such KPI on this scorecard")
        numbers = (await conn.execute(queries.kpi_numbers, params)).all()
        changes = (await conn.execute(queries.kpi_changes, params)).all()
    return history_of(kpi_view(row), numbers, changes, board.thresholds)
