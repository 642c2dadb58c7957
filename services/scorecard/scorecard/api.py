"""Scorecard HTTP API: commands on an alliance's scorecard, and reads from scorecard's own read
models only. Every route is scoped by the caller's organisation: an organisation outside the
alliance gets 404 everywhere, and a partner never sees another partner's private items."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from starlette.responses import JSONResponse, Response

from concord import commands
from concord.commands import CommandContext
from concord.domain import Actor, NotFound
from concord.http import (
    CallerDep,
    ContextDep,
    Page,
    RuntimeDep,
    answer,
    decode_cursor,
    encode_cursor,
    if_match_version,
    require_manager,
)
from concord.membership import KnownAlliance
from concord.problems import bad_request, problem_responses
from concord.runtime import ServiceRuntime
from scorecard import views
from scorecard.domain import periods
from scorecard.domain.periods import PERIOD_PATTERN
from scorecard.domain.rules import Status, StatusThresholds, attainment, status_of
from scorecard.domain.scorecard import (
    BenefitEntry,
    ChangeThresholds,
    DefineKpi,
    DefineObjective,
    InitiativePlan,
    InitiativeProgress,
    KpiActual,
    KpiDefinition,
    KpiTarget,
    LaunchInitiative,
    LinkObjectives,
    ObjectiveDefinition,
    ObjectiveLink,
    OpenScorecard,
    RecordBenefit,
    RecordKpiActual,
    Scorecard,
    ScorecardSetup,
    SetKpiTarget,
    UpdateInitiativeProgress,
    Visibility,
    scorecard,
    stream_id,
)

router = APIRouter(prefix="/alliances", tags=["scorecard"])
COMMAND_ERRORS = problem_responses(403, 409, 412)
PeriodQuery = Annotated[
    str | None,
    Query(
        pattern=PERIOD_PATTERN,
        description="A month (2026-11) or quarter (2026-Q4); the current month by default",
    ),
]
MinVersion = Annotated[
    int,
    Query(
        ge=0,
        le=1_000_000_000,
        description="Wait briefly until the scorecard has caught up with this version (the "
        "ETag a command answered with)",
    ),
]


# --- who may see what -----------------------------------------------------------------------


async def known_alliance(
    runtime: ServiceRuntime, alliance_id: UUID, caller: Actor, min_version: int | None = None
) -> KnownAlliance:
    """The alliance, if the caller's organisation is one of its partners; 404 otherwise."""
    return await runtime.alliances.known(runtime, alliance_id, caller.org, min_version)


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


# --- commands -------------------------------------------------------------------------------


async def _command(
    runtime: ServiceRuntime,
    request: Request,
    context: CommandContext,
    alliance_id: UUID,
    command: Callable[[tuple[str, ...]], Any],
    respond: Callable[[Scorecard, int], BaseModel],
    *,
    status_code: int = 200,
    location: str | None = None,
) -> JSONResponse:
    """Run a command built for the alliance's current partners (as governance says)."""
    alliance = await known_alliance(runtime, alliance_id, context.actor)
    result = await commands.execute(
        runtime,
        context,
        scorecard,
        stream_id=stream_id(alliance_id),
        alliance_id=str(alliance_id),
        command=command(alliance.partner_orgs),
        authorize=lambda state: require_manager(context.actor),
        respond=respond,
        expected_version=if_match_version(request),
        status_code=status_code,
        location=location,
    )
    return answer(result)


class ScorecardSummary(BaseModel):
    alliance_id: UUID
    currency: str
    thresholds: StatusThresholds
    kpis: int
    objectives: int
    initiatives: int
    version: int


def _summary(caller: Actor) -> Callable[[Scorecard, int], ScorecardSummary]:
    def respond(state: Scorecard, version: int) -> ScorecardSummary:
        assert state.alliance_id is not None
        return ScorecardSummary(
            alliance_id=state.alliance_id,
            currency=state.currency,
            thresholds=state.thresholds,
            kpis=sum(k.visible_to(caller.org) for k in state.kpis.values()),
            objectives=len(state.objectives),
            initiatives=len(state.initiatives),
            version=version,
        )

    return respond


@router.post(
    "/{alliance_id}/scorecard",
    operation_id="scorecard-open",
    summary="Open the alliance's scorecard",
    status_code=201,
    response_model=ScorecardSummary,
    responses=COMMAND_ERRORS,
)
async def open_scorecard(
    alliance_id: UUID,
    setup: ScorecardSetup,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda partners: OpenScorecard(
            alliance_id=alliance_id, setup=setup, partners=partners, by=caller
        ),
        _summary(caller),
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
    alliance_id: UUID,
    thresholds: StatusThresholds,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda _: ChangeThresholds(thresholds=thresholds, by=caller),
        _summary(caller),
    )


class KpiNumbers(BaseModel):
    kpi_id: UUID
    period: str
    target: Decimal | None
    actual: Decimal | None
    attainment: Decimal | None
    status: Status
    version: int


def _numbers(kpi_id: UUID, period: str) -> Callable[[Scorecard, int], KpiNumbers]:
    def respond(state: Scorecard, version: int) -> KpiNumbers:
        kpi = state.kpis[kpi_id]
        numbers = state.numbers.get((kpi_id, period))
        target = numbers.target if numbers else None
        actual = numbers.actual if numbers else None
        return KpiNumbers(
            kpi_id=kpi_id,
            period=period,
            target=target,
            actual=actual,
            attainment=attainment(target, actual, kpi.good_direction),
            status=status_of(target, actual, kpi.good_direction, state.thresholds),
            version=version,
        )

    return respond


class DefinedKpi(views.KpiView):
    version: int


@router.post(
    "/{alliance_id}/scorecard/kpis",
    operation_id="scorecard-define-kpi",
    summary="Define a KPI",
    status_code=201,
    response_model=DefinedKpi,
    responses=COMMAND_ERRORS,
)
async def define_kpi(
    alliance_id: UUID,
    definition: KpiDefinition,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    kpi_id = uuid4()

    def respond(state: Scorecard, version: int) -> DefinedKpi:
        return DefinedKpi(id=kpi_id, **definition.model_dump(), version=version)

    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda partners: DefineKpi(
            kpi_id=kpi_id, definition=definition, partners=partners, by=caller
        ),
        respond,
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
    alliance_id: UUID,
    kpi_id: UUID,
    target: KpiTarget,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda _: SetKpiTarget(kpi_id=kpi_id, target=target, by=caller),
        _numbers(kpi_id, target.period),
    )


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
    alliance_id: UUID,
    kpi_id: UUID,
    actual: KpiActual,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda _: RecordKpiActual(kpi_id=kpi_id, actual=actual, by=caller),
        _numbers(kpi_id, actual.period),
    )


class DefinedObjective(BaseModel):
    id: UUID
    name: str
    drives: list[UUID]
    kpi_ids: list[UUID]
    version: int


def _objective(objective_id: UUID, caller: Actor) -> Callable[[Scorecard, int], DefinedObjective]:
    def respond(state: Scorecard, version: int) -> DefinedObjective:
        objective = state.objectives[objective_id]
        return DefinedObjective(
            id=objective_id,
            name=objective.name,
            drives=sorted(
                (effect for cause, effect in state.links if cause == objective_id), key=str
            ),
            kpi_ids=[k for k in objective.kpi_ids if state.kpis[k].visible_to(caller.org)],
            version=version,
        )

    return respond


@router.post(
    "/{alliance_id}/scorecard/objectives",
    operation_id="scorecard-define-objective",
    summary="Define a strategic objective, tied to the KPIs that measure it",
    status_code=201,
    response_model=DefinedObjective,
    responses=COMMAND_ERRORS,
)
async def define_objective(
    alliance_id: UUID,
    definition: ObjectiveDefinition,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    objective_id = uuid4()
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda _: DefineObjective(objective_id=objective_id, definition=definition, by=caller),
        _objective(objective_id, caller),
        status_code=201,
    )


@router.post(
    "/{alliance_id}/scorecard/strategy-map/links",
    operation_id="scorecard-link-objectives",
    summary="Link two objectives on the strategy map: the cause drives the effect",
    response_model=DefinedObjective,
    responses=COMMAND_ERRORS,
)
async def link_objectives(
    alliance_id: UUID,
    link: ObjectiveLink,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda _: LinkObjectives(link=link, by=caller),
        _objective(link.cause_id, caller),
    )


class InitiativeState(BaseModel):
    id: UUID
    name: str
    owner_org: str
    completion: int
    as_of: date | None
    version: int


def _initiative(initiative_id: UUID) -> Callable[[Scorecard, int], InitiativeState]:
    def respond(state: Scorecard, version: int) -> InitiativeState:
        initiative = state.initiatives[initiative_id]
        return InitiativeState(
            id=initiative_id,
            name=initiative.name,
            owner_org=initiative.owner_org,
            completion=initiative.completion,
            as_of=initiative.as_of,
            version=version,
        )

    return respond


@router.post(
    "/{alliance_id}/scorecard/initiatives",
    operation_id="scorecard-launch-initiative",
    summary="Launch an initiative",
    status_code=201,
    response_model=InitiativeState,
    responses=COMMAND_ERRORS,
)
async def launch_initiative(
    alliance_id: UUID,
    plan: InitiativePlan,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    initiative_id = uuid4()
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda partners: LaunchInitiative(
            initiative_id=initiative_id, plan=plan, partners=partners, by=caller
        ),
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
    alliance_id: UUID,
    initiative_id: UUID,
    progress: InitiativeProgress,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda _: UpdateInitiativeProgress(
            initiative_id=initiative_id, progress=progress, by=caller
        ),
        _initiative(initiative_id),
    )


class RecordedBenefit(BaseModel):
    id: UUID
    entry: BenefitEntry
    version: int


@router.post(
    "/{alliance_id}/scorecard/benefits",
    operation_id="scorecard-record-benefit",
    summary="Record a benefit a partner gained, with its evidence",
    status_code=201,
    response_model=RecordedBenefit,
    responses=COMMAND_ERRORS,
)
async def record_benefit(
    alliance_id: UUID,
    entry: BenefitEntry,
    caller: CallerDep,
    context: ContextDep,
    runtime: RuntimeDep,
    request: Request,
) -> JSONResponse:
    entry_id = uuid4()
    return await _command(
        runtime,
        request,
        context,
        alliance_id,
        lambda partners: RecordBenefit(
            entry_id=entry_id, entry=entry, partners=partners, by=caller
        ),
        lambda state, version: RecordedBenefit(id=entry_id, entry=entry, version=version),
        status_code=201,
    )


# --- reads ----------------------------------------------------------------------------------

# The columns each read selects: named, so a column added by a migration changes no read.
KPI_COLUMNS = (
    "alliance_id, kpi_id, position, name, description, dimension, kind, unit, currency, "
    "good_direction, owner_org, visibility, cadence, headline, feed, defined_at"
)
INITIATIVE_COLUMNS = (
    "initiative_id, position, name, description, dimension, owner_org, owner_name, "
    "leading_indicator, due_date, launched_at"
)
PROGRESS_COLUMNS = (
    "initiative_id, stream_version, as_of, completion, status, note, by_org, by_sub, at"
)
OBJECTIVE_COLUMNS = "objective_id, position, name, description, dimension, kpi_ids"
LINK_COLUMNS = "cause_id, effect_id, position"
CHANGE_COLUMNS = (
    "stream_version, kpi_id, period, change, old_value, new_value, status, source, note, "
    "by_org, by_sub, at"
)
BENEFIT_COLUMNS = (
    "entry_id, position, partner_org, kind, amount, currency, period, period_order, evidence, "
    "visibility, by_org, by_sub, recorded_at"
)
_board = text(
    """SELECT currency, thresholds, version FROM scorecard.scorecards
       WHERE alliance_id = :id AND version >= :min_version"""
).columns(thresholds=JSONB)
_kpis = text(
    f"""SELECT {KPI_COLUMNS}
       FROM scorecard.kpis WHERE alliance_id = :id
         AND (visibility = 'shared' OR owner_org = :org)
       ORDER BY position"""
)
_numbers_of_kpis = text(
    """SELECT n.kpi_id, n.period, n.period_order, n.target, n.actual
       FROM scorecard.kpi_periods n JOIN scorecard.kpis k USING (alliance_id, kpi_id)
       WHERE n.alliance_id = :id AND (k.visibility = 'shared' OR k.owner_org = :org)
         AND n.period_order <= :through"""
)
_initiatives = text(f"""SELECT {INITIATIVE_COLUMNS}
       FROM scorecard.initiatives WHERE alliance_id = :id ORDER BY position""")
_progress = text(
    f"""SELECT {PROGRESS_COLUMNS}
       FROM scorecard.initiative_progress WHERE alliance_id = :id
       ORDER BY stream_version"""
)
_balance = text(
    """SELECT period, period_order, partner_org, amount FROM scorecard.benefit_balance
       WHERE alliance_id = :id"""
)
_objectives = text(f"""SELECT {OBJECTIVE_COLUMNS}
       FROM scorecard.objectives WHERE alliance_id = :id""")
_links = text(f"""SELECT {LINK_COLUMNS}
       FROM scorecard.objective_links WHERE alliance_id = :id""")


class Board(BaseModel):
    """What every read starts from: the alliance, its scorecard, and the caller."""

    alliance: KnownAlliance
    currency: str
    thresholds: StatusThresholds
    version: int

    @property
    def partners(self) -> list[tuple[str, str]]:
        return [(p.org_id, p.name) for p in self.alliance.partners]


NO_BOARD = "This alliance has no scorecard yet (or it has not caught up: retry)"


async def _board_row(runtime: ServiceRuntime, alliance_id: UUID, min_version: int) -> Any:
    """The scorecard's row, or None. Waits only for a caller that asks to read its own
    write (`min_version`), and never holds a pooled connection while it waits."""
    params = {"id": alliance_id, "min_version": min_version}

    async def lookup() -> Any:
        async with runtime.engine.connect() as conn:
            return (await conn.execute(_board, params)).first()

    if min_version:
        return await runtime.read_your_writes(lookup, projection="scorecard_board")
    return await lookup()


async def _open_board(
    runtime: ServiceRuntime, alliance_id: UUID, caller: Actor, min_version: int
) -> Board:
    """The alliance and its scorecard, or 404."""
    alliance = await known_alliance(runtime, alliance_id, caller)
    row = await _board_row(runtime, alliance_id, min_version)
    if row is None:
        raise NotFound(NO_BOARD)
    return _board_of(alliance, row)


def _board_of(alliance: KnownAlliance, row: Any) -> Board:
    return Board(
        alliance=alliance,
        currency=row.currency,
        thresholds=StatusThresholds.model_validate(row.thresholds),
        version=row.version,
    )


def _today() -> date:
    return datetime.now(UTC).date()


def _current_month() -> str:
    return periods.period_of(_today(), periods.Cadence.month)


async def _page(
    runtime: ServiceRuntime,
    alliance_id: UUID,
    caller: Actor,
    period: str | None,
    min_version: int,
) -> views.ScorecardPage:
    view_period = period or _current_month()
    # Up to the end of the quarter: a quarterly KPI in a month's view shows that quarter.
    through = periods.order(periods.as_seen_in(view_period, periods.Cadence.quarter))
    params = {"id": alliance_id, "org": caller.org, "through": through}
    alliance = await known_alliance(runtime, alliance_id, caller)
    if min_version and await _board_row(runtime, alliance_id, min_version) is None:
        raise NotFound(NO_BOARD)
    # One snapshot for the whole page, so the version it shows is the version of every row.
    async with runtime.snapshot() as conn:
        row = (await conn.execute(_board, {**params, "min_version": 0})).first()
        if row is None:
            raise NotFound(NO_BOARD)
        board = _board_of(alliance, row)
        kpi_rows = (await conn.execute(_kpis, params)).all()
        number_rows = (await conn.execute(_numbers_of_kpis, params)).all()
        initiative_rows = (await conn.execute(_initiatives, params)).all()
        progress_rows = (await conn.execute(_progress, params)).all()
        balance_rows = (await conn.execute(_balance, params)).all()
        objective_rows = (await conn.execute(_objectives, params)).all()
        link_rows = (await conn.execute(_links, params)).all()

    by_kpi: dict[UUID, list[Any]] = {}
    for row in number_rows:
        by_kpi.setdefault(row.kpi_id, []).append(row)
    goals: list[views.KpiCard] = []
    leading, lagging = views.ByDimension(), views.ByDimension()
    for row in kpi_rows:
        kpi = views.kpi_view(row)
        points = views.series(kpi, by_kpi.get(kpi.id, []), board.thresholds)
        card = views.kpi_card(kpi, points, view_period)
        if kpi.headline:
            goals.append(card)
        else:
            group = leading if kpi.kind == "leading" else lagging
            getattr(group, kpi.dimension.value).append(card)
    reports: dict[UUID, list[Any]] = {}
    for row in progress_rows:
        reports.setdefault(row.initiative_id, []).append(row)
    balance = views.balance_points(balance_rows, board.partners, board.thresholds)
    return views.ScorecardPage(
        alliance_id=alliance_id,
        alliance_name=board.alliance.name,
        period=view_period,
        currency=board.currency,
        thresholds=board.thresholds,
        version=board.version,
        goals=goals,
        leading=leading,
        lagging=lagging,
        initiatives=[
            views.initiative_card(row, reports.get(row.initiative_id, []), view_period, _today())
            for row in initiative_rows
        ],
        balance_of_benefits=views.balance_through(
            balance, board.partners, view_period, board.currency, board.thresholds
        ),
        strategy_map=views.strategy_map(
            objective_rows, link_rows, {row.kpi_id for row in kpi_rows}
        ),
    )


@router.get(
    "/{alliance_id}/scorecard",
    operation_id="scorecard-page",
    summary="The one-page scorecard for a period",
    description="Goals, leading and lagging KPIs by dimension (target, actual, status, "
    "direction), initiatives (completion, direction), the balance of benefits and the "
    "strategy map, as of the period's end.",
    response_model=views.ScorecardPage,
)
async def scorecard_page(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    period: PeriodQuery = None,
    min_version: MinVersion = 0,
) -> views.ScorecardPage:
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
    min_version: MinVersion = 0,
) -> Response:
    page = await _page(runtime, alliance_id, caller, period, min_version)
    filename = f"scorecard-{alliance_id}-{page.period}.csv"
    return Response(
        views.page_as_csv(page),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


_one_kpi = text(
    f"""SELECT {KPI_COLUMNS}
       FROM scorecard.kpis WHERE alliance_id = :id AND kpi_id = :kpi_id
         AND (visibility = 'shared' OR owner_org = :org)"""
)
_kpi_numbers = text(
    """SELECT period, period_order, target, actual FROM scorecard.kpi_periods
       WHERE alliance_id = :id AND kpi_id = :kpi_id"""
)
_kpi_changes = text(
    f"""SELECT {CHANGE_COLUMNS}
       FROM scorecard.kpi_changes WHERE alliance_id = :id AND kpi_id = :kpi_id
       ORDER BY stream_version"""
)


@router.get(
    "/{alliance_id}/scorecard/kpis/{kpi_id}",
    operation_id="scorecard-kpi",
    summary="A KPI's definition",
    response_model=views.KpiView,
)
async def get_kpi(
    alliance_id: UUID,
    kpi_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: MinVersion = 0,
) -> views.KpiView:
    await _open_board(runtime, alliance_id, caller, min_version)
    params = {"id": alliance_id, "kpi_id": kpi_id, "org": caller.org}
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(_one_kpi, params)).first()
    if row is None:
        raise NotFound("No such KPI on this scorecard")
    return views.kpi_view(row)


@router.get(
    "/{alliance_id}/scorecard/kpis/{kpi_id}/history",
    operation_id="scorecard-kpi-history",
    summary="A KPI over time: each period judged, and every change with who made it",
    response_model=views.KpiHistory,
)
async def kpi_history(
    alliance_id: UUID,
    kpi_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: MinVersion = 0,
) -> views.KpiHistory:
    params = {"id": alliance_id, "kpi_id": kpi_id, "org": caller.org}
    board = await _open_board(runtime, alliance_id, caller, min_version)
    async with runtime.snapshot() as conn:
        row = (await conn.execute(_one_kpi, params)).first()
        if row is None:
            raise NotFound("No such KPI on this scorecard")
        numbers = (await conn.execute(_kpi_numbers, params)).all()
        changes = (await conn.execute(_kpi_changes, params)).all()
    kpi = views.kpi_view(row)
    return views.KpiHistory(
        kpi=kpi,
        series=views.series(kpi, numbers, board.thresholds),
        changes=[
            views.KpiChange(
                at=c.at,
                period=c.period,
                change=c.change,
                old_value=c.old_value,
                new_value=c.new_value,
                status=c.status,
                source=c.source,
                note=c.note,
                by_org=c.by_org,
                by=c.by_sub,
            )
            for c in changes
        ],
    )


_one_initiative = text(
    f"""SELECT {INITIATIVE_COLUMNS}
       FROM scorecard.initiatives WHERE alliance_id = :id AND initiative_id = :initiative_id"""
)
_initiative_progress = text(
    f"""SELECT {PROGRESS_COLUMNS}
       FROM scorecard.initiative_progress
       WHERE alliance_id = :id AND initiative_id = :initiative_id ORDER BY stream_version"""
)


@router.get(
    "/{alliance_id}/scorecard/initiatives/{initiative_id}",
    operation_id="scorecard-initiative",
    summary="An initiative as of a period's end (the current month by default)",
    response_model=views.InitiativeCard,
)
async def get_initiative(
    alliance_id: UUID,
    initiative_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    period: PeriodQuery = None,
    min_version: MinVersion = 0,
) -> views.InitiativeCard:
    return (
        await initiative_history(alliance_id, initiative_id, caller, runtime, period, min_version)
    ).initiative


@router.get(
    "/{alliance_id}/scorecard/initiatives/{initiative_id}/history",
    operation_id="scorecard-initiative-history",
    summary="An initiative and every progress report on it",
    response_model=views.InitiativeHistory,
)
async def initiative_history(
    alliance_id: UUID,
    initiative_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    period: PeriodQuery = None,
    min_version: MinVersion = 0,
) -> views.InitiativeHistory:
    params = {"id": alliance_id, "initiative_id": initiative_id}
    await _open_board(runtime, alliance_id, caller, min_version)
    async with runtime.snapshot() as conn:
        row = (await conn.execute(_one_initiative, params)).first()
        if row is None:
            raise NotFound("No such initiative on this scorecard")
        reports = (await conn.execute(_initiative_progress, params)).all()
    return views.InitiativeHistory(
        initiative=views.initiative_card(row, reports, period or _current_month(), _today()),
        progress=[
            views.ProgressReport(
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


_ledger = text(
    f"""SELECT {BENEFIT_COLUMNS}
       FROM scorecard.benefits
       WHERE alliance_id = :id AND (visibility = 'shared' OR partner_org = :org)
         AND position > :after
       ORDER BY position LIMIT :limit"""
)


@router.get(
    "/{alliance_id}/scorecard/benefits",
    operation_id="scorecard-benefits-ledger",
    summary="The benefits ledger: shared entries, and your organisation's private ones",
    response_model=Page[views.BenefitView],
)
async def benefits_ledger(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    min_version: MinVersion = 0,
) -> Page[views.BenefitView]:
    after = decode_cursor(cursor)
    position = after.get("position") if after else 0
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < 2**31:
        raise bad_request("The cursor is not one this API gave out")
    params = {"id": alliance_id, "org": caller.org, "after": position, "limit": limit + 1}
    await _open_board(runtime, alliance_id, caller, min_version)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(_ledger, params)).all()
    items = [
        views.BenefitView(
            id=r.entry_id,
            partner_org=r.partner_org,
            kind=r.kind,
            amount=r.amount,
            currency=r.currency,
            period=r.period,
            evidence=r.evidence,
            visibility=Visibility(r.visibility),
            recorded_by_org=r.by_org,
            recorded_by=r.by_sub,
            recorded_at=r.recorded_at,
        )
        for r in rows[:limit]
    ]
    next_cursor = (
        encode_cursor({"position": rows[limit - 1].position}) if len(rows) > limit else None
    )
    return Page[views.BenefitView](items=items, next_cursor=next_cursor)


@router.get(
    "/{alliance_id}/scorecard/balance-of-benefits",
    operation_id="scorecard-balance-history",
    summary="The balance of benefits over time: cumulative shares after each period",
    response_model=views.BalanceHistory,
)
async def balance_history(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: MinVersion = 0,
) -> views.BalanceHistory:
    board = await _open_board(runtime, alliance_id, caller, min_version)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(_balance, {"id": alliance_id})).all()
    return views.BalanceHistory(
        currency=board.currency,
        threshold=board.thresholds.imbalance_threshold,
        points=views.balance_points(rows, board.partners, board.thresholds),
    )
