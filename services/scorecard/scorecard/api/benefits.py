"""The benefits ledger: recording a benefit a partner gained, reading the ledger page by
page (shared entries, and the caller's organisation's private ones), and the balance of
benefits over time."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse

from concord.http import CallerDep, Page, RuntimeDep
from concord.pagination import NUMBER, Cursor
from scorecard.api import queries
from scorecard.api.alliances import COMMAND_ERRORS, Commands
from scorecard.api.board import MinVersion, open_board
from scorecard.domain.benefits import BenefitEntry, RecordBenefit
from scorecard.views.benefits import (
    BalanceHistory,
    BenefitView,
    RecordedBenefit,
    balance_points,
    benefit_view,
)
from scorecard.views.versions import versions

router = APIRouter(prefix="/alliances", tags=["scorecard"])
# The place of an entry in the ledger: the shared scorecard's version, and for one of your
# organisation's private entries its private version (0 for a shared one).
IN_LEDGER_ORDER = Cursor(NUMBER, NUMBER)


@router.post(
    "/{alliance_id}/scorecard/benefits",
    operation_id="scorecard-record-benefit",
    summary="Record a benefit a partner gained, with its evidence",
    status_code=201,
    response_model=RecordedBenefit,
    responses=COMMAND_ERRORS,
)
async def record_benefit(
    alliance_id: UUID, entry: BenefitEntry, commands: Commands
) -> JSONResponse:
    entry_id = uuid4()
    return await commands.execute(
        alliance_id,
        lambda partners: RecordBenefit(entry_id, entry, partners, commands.caller),
        lambda state, version: RecordedBenefit(id=entry_id, entry=entry, **versions(version)),
        status_code=201,
    )


@router.get(
    "/{alliance_id}/scorecard/benefits",
    operation_id="scorecard-benefits-ledger",
    summary="The benefits ledger: shared entries, and your organisation's private ones",
    response_model=Page[BenefitView],
)
async def benefits_ledger(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, IN_LEDGER_ORDER.parameter()] = None,
    min_version: MinVersion = None,
) -> Page[BenefitView]:
    position, private = IN_LEDGER_ORDER.read(cursor) or (0, 0)
    params = {"id": alliance_id, "org": caller.org, "after": position, "after_private": private}
    await open_board(runtime, alliance_id, caller, min_version)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(queries.ledger, {**params, "limit": limit + 1})).all()
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = IN_LEDGER_ORDER.write(last.position, last.private_position)
    return Page[BenefitView](items=[benefit_view(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.get(
    "/{alliance_id}/scorecard/balance-of-benefits",
    operation_id="scorecard-balance-history",
    summary="The balance of benefits over time: cumulative shares after each period",
    response_model=BalanceHistory,
)
async def balance_history(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: MinVersion = None,
) -> BalanceHistory:
    board = await open_board(runtime, alliance_id, caller, min_version)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(queries.balance, {"id": alliance_id})).all()
    return BalanceHistory(
        currency=board.currency,
        threshold=board.thresholds.imbalance_threshold,
        points=balance_points(rows, board.partners, board.thresholds),
    )
