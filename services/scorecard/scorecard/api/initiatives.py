"""Initiatives: launching one, its owner organisation reporting progress, and reading an
initiative as of a period's end, with every progress report on it."""

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
from scorecard.api.board import MinVersion, PeriodQuery, current_month, open_board, today
from scorecard.domain.initiatives import (
    InitiativePlan,
    InitiativeProgress,
    LaunchInitiative,
    UpdateInitiativeProgress,
)
from scorecard.domain.state import Scorecard
from scorecard.views.initiatives import (
    InitiativeCard,
    InitiativeHistory,
    InitiativeState,
    history_of,
    initiative_state,
)

router = APIRouter(prefix="/alliances", tags=["scorecard"])


def _initiative(initiative_id: UUID) -> Callable[[Scorecard, Version], InitiativeState]:
    return lambda state, version: initiative_state(state, initiative_id, version)


@router.post(
    "/{alliance_id}/scorecard/initiatives",
    operation_id="scorecard-launch-initiative",
    summary="Launch an initiative",
    status_code=201,
    response_model=InitiativeState,
    responses=COMMAND_ERRORS,
)
async def launch_initiative(
    alliance_id: UUID, plan: InitiativePlan, commands: Commands
) -> JSONResponse:
    initiative_id = uuid4()
    return await commands.execute(
        alliance_id,
        lambda partners: LaunchInitiative(initiative_id, plan, partners, commands.caller),
        _initiative(initiative_id),
        status_code=201,
        location=f"/alliances/{alliance_id}/scorecard/initiatives/{initiative_id}",
    )


@router.post(
    "/{alliance_id}/scorecard/initiatives/{initiative_id}/progress",
    operation_id="scorecard-update-initiative-progress",
    summary="Report an initiative's progress (its owner organisation only)",
    response_model=InitiativeState,
    responses=COMMAND_ERRORS,
)
async def update_initiative_progress(
    alliance_id: UUID, initiative_id: UUID, progress: InitiativeProgress, commands: Commands
) -> JSONResponse:
    command = UpdateInitiativeProgress(initiative_id, progress, commands.caller)
    return await commands.execute(alliance_id, command, _initiative(initiative_id))


@router.get(
    "/{alliance_id}/scorecard/initiatives/{initiative_id}",
    operation_id="scorecard-initiative",
    summary="An initiative as of a period's end (the current month by default)",
    response_model=InitiativeCard,
)
async def get_initiative(
    alliance_id: UUID,
    initiative_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    period: PeriodQuery = None,
    min_version: MinVersion = None,
) -> InitiativeCard:
    return (
        await initiative_history(alliance_id, initiative_id, caller, runtime, period, min_version)
    ).initiative


@router.get(
    "/{alliance_id}/scorecard/initiatives/{initiative_id}/history",
    operation_id="scorecard-initiative-history",
    summary="An initiative and every progress report on it",
    response_model=InitiativeHistory,
)
async def initiative_history(
    alliance_id: UUID,
    initiative_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    period: PeriodQuery = None,
    min_version: MinVersion = None,
) -> InitiativeHistory:
    params = {"id": alliance_id, "initiative_id": initiative_id}
    await open_board(runtime, alliance_id, caller, min_version)
    async with runtime.snapshot() as conn:
        row = (await conn.execute(queries.one_initiative, params)).first()
        if row is None:
            raise NotFound("No such initiative on this scorecard")
        reports = (await conn.execute(queries.initiative_progress, params)).all()
    return history_of(row, reports, period or current_month(), today())
