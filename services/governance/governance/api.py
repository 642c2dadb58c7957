"""Governance HTTP API: turns requests into alliance commands, and reads alliances back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse

from concord import commands
from concord.domain import Actor, NotFound
from concord.http import (
    CallerDep,
    ContextDep,
    RuntimeDep,
    answer,
    etag,
    if_match_version,
    require_manager,
)
from concord.membership import ExecutiveSponsor, PartnerOrganisation
from concord.openapi import ETAG
from concord.pagination import ID, TIME, Cursor, Page
from concord.problems import problem_responses
from governance.domain.alliance import (
    AddPartner,
    AgreementVersion,
    AgreePartnershipAgreementVersion,
    Alliance,
    AllianceCharter,
    AppointExecutiveSponsor,
    CreateAlliance,
    RecordRelationalExpectation,
    RelationalExpectation,
    alliance,
    stream_id,
)

router = APIRouter(prefix="/alliances", tags=["alliances"])
COMMAND_ERRORS = problem_responses(403, 409, 412)
# The alliance list's order: when each was created, then its id.
IN_ORDER_CREATED = Cursor(TIME, ID)
FROM_THE_START = (datetime.min.replace(tzinfo=UTC), UUID(int=0))


class AgreementView(BaseModel):
    version: int
    summary: str
    text: str
    effective_from: date


class AllianceView(BaseModel):
    id: UUID
    name: str
    purpose: str
    goals: list[str]
    partners: list[PartnerOrganisation]
    executive_sponsors: list[ExecutiveSponsor]
    relational_expectations: list[str]
    agreement: AgreementView | None
    agreement_versions: int
    version: int

    @classmethod
    def of(cls, state: Alliance, version: int) -> AllianceView:
        assert state.alliance_id is not None
        current = state.agreements[-1] if state.agreements else None
        return cls(
            id=state.alliance_id,
            name=state.name,
            purpose=state.purpose,
            goals=list(state.goals),
            partners=list(state.partners),
            executive_sponsors=list(state.sponsors),
            relational_expectations=list(state.expectations),
            agreement=AgreementView.model_validate(current, from_attributes=True)
            if current
            else None,
            agreement_versions=len(state.agreements),
            version=version,
        )


class AllianceListItem(BaseModel):
    id: UUID
    name: str
    partner_orgs: list[str]
    created_at: datetime
    version: int


def partner_only(caller: Actor) -> Callable[[Alliance], None]:
    """Organisations outside the alliance get the same 404 as for an alliance that does not
    exist, so they learn nothing about it."""

    def authorize(state: Alliance) -> None:
        if not state.exists or not state.has_partner(caller.org):
            raise NotFound("No such alliance")
        require_manager(caller)

    return authorize


async def _run(
    runtime: RuntimeDep,
    request: Request,
    context: commands.CommandContext,
    alliance_id: UUID,
    command: AddPartner
    | AppointExecutiveSponsor
    | RecordRelationalExpectation
    | AgreePartnershipAgreementVersion,
    status_code: int = 200,
) -> JSONResponse:
    result = await commands.execute(
        runtime,
        context,
        alliance,
        stream_id=stream_id(alliance_id),
        alliance_id=str(alliance_id),
        command=command,
        authorize=partner_only(context.actor),
        respond=AllianceView.of,
        expected_version=if_match_version(request),
        status_code=status_code,
    )
    return answer(result)


@router.post(
    "",
    operation_id="alliances-create",
    summary="Create an alliance from its charter",
    status_code=201,
    response_model=AllianceView,
    responses=problem_responses(403, 409),
)
async def create_alliance(
    charter: AllianceCharter, context: ContextDep, runtime: RuntimeDep, request: Request
) -> JSONResponse:
    caller = context.actor
    require_manager(caller)
    alliance_id = uuid4()

    result = await commands.execute(
        runtime,
        context,
        alliance,
        stream_id=stream_id(alliance_id),
        alliance_id=str(alliance_id),
        command=CreateAlliance(alliance_id=alliance_id, charter=charter, by=caller),
        authorize=lambda state: None,  # the decider checks the caller's org is a partner
        respond=AllianceView.of,
        expected_version=if_match_version(request),
        status_code=201,
        location=f"/alliances/{alliance_id}",
    )
    return answer(result)


@router.get(
    "",
    operation_id="alliances-list",
    summary="The alliances the caller's organisation is a partner in",
    response_model=Page[AllianceListItem],
)
async def list_alliances(
    caller: CallerDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, IN_ORDER_CREATED.parameter()] = None,
) -> Page[AllianceListItem]:
    after_time, after_id = IN_ORDER_CREATED.read(cursor) or FROM_THE_START
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                runtime.alliances.of_org,
                {
                    "org": caller.org,
                    "after_time": after_time,
                    "after_id": after_id,
                    "limit": limit + 1,
                },
            )
        ).all()
    items = [
        AllianceListItem(
            id=r.alliance_id,
            name=r.name,
            partner_orgs=r.partner_orgs,
            created_at=r.created_at,
            version=r.version,
        )
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = IN_ORDER_CREATED.write(last.created_at, last.id)
    return Page[AllianceListItem](items=items, next_cursor=next_cursor)


@router.get(
    "/{alliance_id}",
    operation_id="alliances-get",
    summary="An alliance's charter, as of its latest event",
    response_model=AllianceView,
    responses={200: {"headers": {"ETag": ETAG}}},
)
async def get_alliance(alliance_id: UUID, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    async with runtime.engine.connect() as conn:
        state, version = await commands.current(runtime, conn, alliance, stream_id(alliance_id))
    if not state.exists or not state.has_partner(caller.org):
        raise NotFound("No such alliance")
    view = AllianceView.of(state, version)
    return JSONResponse(view.model_dump(mode="json"), headers={"ETag": etag(version)})


@router.post(
    "/{alliance_id}/partners",
    operation_id="alliances-add-partner",
    summary="Add a partner organisation",
    response_model=AllianceView,
    responses=COMMAND_ERRORS,
)
async def add_partner(
    alliance_id: UUID,
    partner: PartnerOrganisation,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    command = AddPartner(partner=partner, by=context.actor)
    return await _run(runtime, request, context, alliance_id, command)


@router.post(
    "/{alliance_id}/executive-sponsors",
    operation_id="alliances-appoint-executive-sponsor",
    summary="Appoint a partner's executive sponsor (replaces that partner's previous one)",
    response_model=AllianceView,
    responses=COMMAND_ERRORS,
)
async def appoint_executive_sponsor(
    alliance_id: UUID,
    sponsor: ExecutiveSponsor,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    command = AppointExecutiveSponsor(sponsor=sponsor, by=context.actor)
    return await _run(runtime, request, context, alliance_id, command)


@router.post(
    "/{alliance_id}/relational-expectations",
    operation_id="alliances-record-relational-expectation",
    summary="Record a relational expectation (an agreed norm of behaviour)",
    response_model=AllianceView,
    responses=COMMAND_ERRORS,
)
async def record_relational_expectation(
    alliance_id: UUID,
    expectation: RelationalExpectation,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    command = RecordRelationalExpectation(expectation=expectation, by=context.actor)
    return await _run(runtime, request, context, alliance_id, command)


@router.post(
    "/{alliance_id}/agreement-versions",
    operation_id="alliances-agree-agreement-version",
    summary="Agree a new version of the partnership agreement",
    response_model=AllianceView,
    responses=COMMAND_ERRORS,
)
async def agree_agreement_version(
    alliance_id: UUID,
    agreement: AgreementVersion,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    command = AgreePartnershipAgreementVersion(agreement=agreement, by=context.actor)
    return await _run(runtime, request, context, alliance_id, command)
