"""The strategy map: defining an objective, tied to the KPIs that measure it, and linking a
cause to its effect. The map itself is read with the page."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

from fastapi import APIRouter
from starlette.responses import JSONResponse

from concord.commands import Version
from scorecard.api.alliances import COMMAND_ERRORS, Commands
from scorecard.domain.state import Scorecard
from scorecard.domain.strategy import (
    DefineObjective,
    LinkObjectives,
    ObjectiveDefinition,
    ObjectiveLink,
)
from scorecard.views.strategy import DefinedObjective, defined_objective

router = APIRouter(prefix="/alliances", tags=["scorecard"])


def _objective(objective_id: UUID, org: str) -> Callable[[Scorecard, Version], DefinedObjective]:
    return lambda state, version: defined_objective(state, objective_id, org, version)


@router.post(
    "/{alliance_id}/scorecard/objectives",
    operation_id="scorecard-define-objective",
    summary="Define a strategic objective, tied to the KPIs that measure it",
    status_code=201,
    response_model=DefinedObjective,
    responses=COMMAND_ERRORS,
)
async def define_objective(
    alliance_id: UUID, definition: ObjectiveDefinition, commands: Commands
) -> JSONResponse:
    objective_id, caller = uuid4(), commands.caller
    command = DefineObjective(objective_id, definition, caller)
    return await commands.execute(
        alliance_id, command, _objective(objective_id, caller.org), status_code=201
    )


@router.post(
    "/{alliance_id}/scorecard/strategy-map/links",
    operation_id="scorecard-link-objectives",
    summary="Link two objectives on the strategy map: the cause drives the effect",
    response_model=DefinedObjective,
    responses=COMMAND_ERRORS,
)
async def link_objectives(
    alliance_id: UUID, link: ObjectiveLink, commands: Commands
) -> JSONResponse:
    caller = commands.caller
    command = LinkObjectives(link, caller)
    return await commands.execute(alliance_id, command, _objective(link.cause_id, caller.org))
