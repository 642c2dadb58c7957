"""Every scorecard event applied twice leaves the board as applied once: the balance of
benefits is summed from the ledger, never added to, so a redelivered benefit counts once. The
projection's own `apply` is driven, with no intake in front (which would skip the repeat): the
read model must not depend on that alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import text

from concord.events import CloudEvent
from concord.projections import ReadModel
from concord.runtime import ServiceRuntime
from scorecard.domain.events import EVENT_REGISTRY
from tests.conftest import Stack
from tests.integration.conftest import stored_history
from tests.integration.scorecard.conftest import PARTNER_A, PARTNER_B, open_board
from tests.integration.scorecard.support import Services, benefit, caught_up, running_services
from tests.integration.scorecard.test_rebuild import dump, rich_scorecard

# The events the board writes something of its own for (the rest only move its version).
WRITTEN = {
    "scorecard_opened",
    "scorecard_thresholds_changed",
    "kpi_defined",
    "kpi_target_set",
    "kpi_actual_recorded",
    "kpi_actual_corrected",
    "kpi_went_off_track",
    "kpi_recovered",
    "objective_defined",
    "objectives_linked",
    "initiative_launched",
    "initiative_progress_updated",
    "benefit_recorded",
}


@pytest.fixture
async def services(stack: Stack) -> AsyncIterator[Services]:
    async with running_services(stack) as running:
        yield running


async def project(
    runtime: ServiceRuntime, events: list[CloudEvent], *, times: int, fresh: bool = True
) -> None:
    """Apply each event `times` times in a row through the board's `apply` (on an emptied
    board, unless not `fresh`)."""
    board = runtime.runners["scorecard_board"].projection
    async with runtime.engine.begin() as conn:
        for table in board.tables if fresh else ():
            await conn.execute(text(f"TRUNCATE {table}"))
        model = ReadModel(conn)
        for event in events:
            for _ in range(times):
                await board.apply(model, EVENT_REGISTRY.recorded(event))
        await model.flush()


async def test_every_scorecard_event_applied_twice_leaves_the_board_as_applied_once(
    services: Services,
) -> None:
    board = await open_board(services.governance, services.scorecard)
    await rich_scorecard(board)
    # The same partner twice in one period: the balance sums entries, it does not replace.
    await board.ok("/benefits", benefit(PARTNER_A, "100", "2026-01"))
    await board.ok("/benefits", benefit(PARTNER_B, "50", "2026-01"), PARTNER_B)
    runtime = services.scorecard_runtime
    await caught_up(runtime)
    live = await dump(runtime)
    events = await stored_history(runtime, "scorecard")
    names = {e.name for e in events}
    assert names >= WRITTEN
    assert names - WRITTEN, "and some that only move the board's version"

    await project(runtime, events, times=1)
    once = await dump(runtime)
    assert once == live
    await project(runtime, events, times=1, fresh=False)  # the whole history again
    assert await dump(runtime) == once
    await project(runtime, events, times=2)  # each event twice in a row
    assert await dump(runtime) == once
    async with runtime.engine.connect() as conn:
        january = await conn.execute(
            text(
                """SELECT partner_org, amount, entries FROM scorecard.benefit_balance
                   WHERE period = '2026-01' ORDER BY partner_org"""
            )
        )
        assert [tuple(row) for row in january] == [
            (PARTNER_A, Decimal("750"), 2),
            (PARTNER_B, Decimal("50"), 1),
        ]
