"""A private KPI's missing actual (ADR 0009): its `kpi_actual_due` timer is set on its
partner's private scorecard, moves when that scorecard adopts new grace days, and fires
there, on the scorecard's own clock (a `ManualClock`: nothing sleeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from concord.clock import ManualClock
from concord.events import private_stream
from tests.conftest import Stack
from tests.integration.meters import eventually
from tests.integration.scorecard.conftest import PARTNER_A, PARTNER_B, open_board
from tests.integration.scorecard.support import (
    Services,
    names,
    of_type,
    running_services,
    stored_events,
    target,
)

DUE = text("SELECT due_at, fired_at FROM scorecard.timers WHERE stream_id = :stream")


@pytest.fixture
async def services(stack: Stack) -> AsyncIterator[Services]:
    """A stack of its own: the test moves the scorecard's clock."""
    async with running_services(stack) as running:
        yield running


async def test_a_private_kpis_missing_actual_is_noted_on_its_private_scorecard(
    services: Services,
) -> None:
    """January's target on acme's private KPI sets a timer on acme's private stream for
    2026-02-11. Globex gives actuals 30 days' grace: acme's private scorecard adopts it and
    the timer moves to 2026-03-03. Past that, the actual is noted missing there, due as the
    adopted grace days say; the shared stream knows nothing of it."""
    runtime = services.scorecard_runtime
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    board = await open_board(services.governance, services.scorecard)
    margin = await board.kpi(name="Acme margin", unit="%", currency=None, visibility="private")
    await target(board, margin["id"], "2026-01", "40")
    stream = private_stream(f"scorecard-{board.alliance_id}", PARTNER_A)

    async def timer() -> Any:
        async with runtime.engine.connect() as conn:
            return (await conn.execute(DUE, {"stream": stream})).one()

    assert (await timer()).due_at == datetime(2026, 2, 11, tzinfo=UTC)
    graceful = {"on_track_from": "0.95", "off_track_below": "0.80", "actual_grace_days": 30}
    await board.ok("/thresholds", graceful, PARTNER_B)

    async def moved() -> bool:
        return bool((await timer()).due_at == datetime(2026, 3, 3, tzinfo=UTC))

    await eventually(moved)
    clock.set(datetime(2026, 3, 4, tzinfo=UTC))

    async def fired() -> bool:
        return (await timer()).fired_at is not None

    await eventually(fired)
    [missing] = of_type(
        await stored_events(services, board.alliance_id, PARTNER_A), "kpi_actual_missing"
    )
    assert (missing["kpi_id"], missing["period"], missing["visibility"]) == (
        margin["id"],
        "2026-01",
        "private",
    )
    assert missing["due"] == "2026-03-03T00:00:00Z"
    assert "kpi_actual_missing" not in names(await stored_events(services, board.alliance_id))
