"""What every read of a scorecard starts from: the alliance (the caller's organisation must
be a partner) and the scorecard's row on the board, waited for only by a caller that asks to
read its own write (`min_version`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from concord.commands import VERSION_PATTERN, Version
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
    str | None,
    Query(
        pattern=f"^{VERSION_PATTERN}$",
        description="Wait briefly until the scorecard has caught up with this version: the "
        "`version` a command answered with, or its ETag without the quotes (`12.3`: the "
        "shared scorecard's version, then your organisation's private one's)",
        examples=["12", "12.3"],
    ),
]


def board_params(alliance_id: UUID, caller: Actor, min_version: str | None) -> dict[str, Any]:
    """What `queries.board` reads the caller's row with, at `min_version` or later."""
    wanted = Version.parse(min_version) if min_version else None
    reached = {"min_version": 0, "min_private": 0}
    if wanted is not None:
        reached = {"min_version": wanted.part(0), "min_private": wanted.part(1)}
    return {"id": alliance_id, "org": caller.org, **reached}


async def board_row(runtime: ServiceRuntime, params: dict[str, Any]) -> Any:
    """The scorecard's row, or None. Waits only for a caller that asks to read its own
    write (`min_version`), and never holds a pooled connection while it waits."""

    async def lookup() -> Any:
        async with runtime.engine.connect() as conn:
            return (await conn.execute(queries.board, params)).first()

    if params["min_version"] or params["min_private"]:
        return await runtime.read_your_writes(lookup, projection="scorecard_board")
    return await lookup()


async def open_board(
    runtime: ServiceRuntime, alliance_id: UUID, caller: Actor, min_version: str | None
) -> Board:
    """The alliance and its scorecard, or 404."""
    alliance = await known_alliance(runtime, alliance_id, caller)
    row = await board_row(runtime, board_params(alliance_id, caller, min_version))
    if row is None:
        raise NotFound(NO_BOARD)
    return board_of(alliance, row)


def board_of(alliance: KnownAlliance, row: Any) -> Board:
    return Board(
        alliance=alliance,
        currency=row.currency,
        thresholds=StatusThresholds.model_validate(row.thresholds),
        version=row.version,
        private_version=row.private_version,
    )


def today() -> date:
    return datetime.now(UTC).date()


def current_month() -> str:
    return periods.period_of(today(), periods.Cadence.month)
