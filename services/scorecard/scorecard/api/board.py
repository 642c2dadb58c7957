"""What every read of a scorecard starts from: the alliance (the caller's organisation must
be a partner) and the scorecard's row on the board, waited for only by a caller that asks to
read its own write (`min_version`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from concord.domain import Actor, NotFound
from concord.membership import KnownAlliance
from concord.runtime import ServiceRuntime
from scorecard.api import queries
from scorecard.api.alliances import known_alliance
from scorecard.domain import periods
from scorecard.domain.periods import PERIOD_PATTERN
from scorecard.domain.rules import StatusThresholds
from scorecard.views.page import Board

NO_BOARD = "This alliance has no scorecard yet (or it has not caught up: retry)"
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


async def board_row(runtime: ServiceRuntime, alliance_id: UUID, min_version: int) -> Any:
    """The scorecard's row, or None. Waits only for a caller that asks to read its own
    write (`min_version`), and never holds a pooled connection while it waits."""
    params = {"id": alliance_id, "min_version": min_version}

    async def lookup() -> Any:
        async with runtime.engine.connect() as conn:
            return (await conn.execute(queries.board, params)).first()

    if min_version:
        return await runtime.read_your_writes(lookup, projection="scorecard_board")
    return await lookup()


async def open_board(
    runtime: ServiceRuntime, alliance_id: UUID, caller: Actor, min_version: int
) -> Board:
    """The alliance and its scorecard, or 404."""
    alliance = await known_alliance(runtime, alliance_id, caller)
    row = await board_row(runtime, alliance_id, min_version)
    if row is None:
        raise NotFound(NO_BOARD)
    return board_of(alliance, row)


def board_of(alliance: KnownAlliance, row: Any) -> Board:
    return Board(
        alliance=alliance,
        currency=row.currency,
        thresholds=StatusThresholds.model_validate(row.thresholds),
        version=row.version,
    )


def today() -> date:
    return datetime.now(UTC).date()


def current_month() -> str:
    return periods.period_of(today(), periods.Cadence.month)
