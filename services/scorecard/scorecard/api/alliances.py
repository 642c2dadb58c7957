"""Who may see and change an alliance's scorecard: only its partner organisations (any other
caller gets 404, as for an alliance that does not exist), and only their alliance managers
change it. Every scorecard command goes through `Commands`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.responses import JSONResponse

from concord.commands import Version, View
from concord.domain import Actor
from concord.http import CallerDep, CommandDep, CommandRequest, RuntimeDep, require_manager
from concord.membership import KnownAlliance
from concord.problems import problem_responses
from concord.runtime import ServiceRuntime
from scorecard.domain import partner_view
from scorecard.domain.partner_view import PartnerView, private_stream_id
from scorecard.domain.scorecard import PartnerCommand, scorecard, stream_id
from scorecard.domain.state import Scorecard

router = APIRouter(prefix="/alliances", tags=["scorecard"])
COMMAND_ERRORS = problem_responses(403, 409, 412)
# A command that names the alliance's partners (as governance says, now): built once they
# are known.
ForPartners = Callable[[tuple[str, ...]], PartnerCommand]
PARTNER_VIEW: View[Scorecard, PartnerView, PartnerCommand] = View(
    scorecard, partner_view.see, partner_view.decide
)


async def known_alliance(
    runtime: ServiceRuntime, alliance_id: UUID, caller: Actor, min_version: int | None = None
) -> KnownAlliance:
    """The alliance, if the caller's organisation is one of its partners; 404 otherwise."""
    return await runtime.alliances.known(runtime, alliance_id, caller.org, min_version)


class ScorecardCommands:
    """A caller's command on an alliance's scorecard, answered with `respond(state, version)`
    after it: `execute` checks the caller's organisation is a partner and the caller an
    alliance manager, and runs the command on what that organisation may see (the shared
    scorecard and its own private one, ADR 0009), which is also what its ETag says."""

    def __init__(self, call: CommandRequest) -> None:
        self.call = call

    @property
    def caller(self) -> Actor:
        return self.call.caller

    async def execute(
        self,
        alliance_id: UUID,
        command: PartnerCommand | ForPartners,
        respond: Callable[[Scorecard, Version], BaseModel],
        *,
        status_code: int = 200,
        location: str | None = None,
    ) -> JSONResponse:
        alliance = await known_alliance(self.call.runtime, alliance_id, self.caller)
        return await self.call.execute_view(
            PARTNER_VIEW,
            stream_ids=(stream_id(alliance_id), private_stream_id(alliance_id, self.caller.org)),
            alliance_id=str(alliance_id),
            command=command(alliance.partner_orgs) if callable(command) else command,
            authorize=lambda view: require_manager(self.caller),
            respond=lambda view, version: respond(view.seen, version),
            status_code=status_code,
            location=location,
        )


def _commands(call: CommandDep) -> ScorecardCommands:
    return ScorecardCommands(call)


Commands = Annotated[ScorecardCommands, Depends(_commands)]


@router.get(
    "/{alliance_id}",
    operation_id="alliances-get",
    summary="An alliance as scorecard knows it",
    description=(
        "Served from scorecard's projection of governance's events. A client that has just "
        "written in governance can pass the version it got back (its ETag) as `min_version`: "
        "the read waits briefly for the projection to catch up, then answers 404 if it has not."
    ),
    response_model=KnownAlliance,
)
async def get_alliance(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: Annotated[
        int | None,
        Query(
            ge=1,
            le=1_000_000_000,
            description="Wait briefly until scorecard has caught up with this charter version",
        ),
    ] = None,
) -> KnownAlliance:
    return await known_alliance(runtime, alliance_id, caller, min_version)
