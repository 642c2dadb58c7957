"""Input at the edges of what the scorecard accepts, through HTTP against the real stack: a
number that only breaks its limit once rounded. It is refused as a problem, with nothing of it
stored."""

from __future__ import annotations

from tests.contract.conftest import assert_problem
from tests.integration.scorecard.conftest import Board
from tests.integration.scorecard.support import Services, stored_events

# --- decimals are checked after rounding ----------------------------------------------------


async def test_a_value_that_rounds_past_its_digits_is_refused(
    board: Board, services: Services
) -> None:
    """A KPI value has at most 13 digits before the point and 4 after it: 9999999999999.99995
    rounds to 10000000000000.0000, 14 digits, so it is refused and nothing is stored."""
    revenue = await board.kpi()
    before = await stored_events(services, board.alliance_id)

    for value in ("9999999999999.99995", "-9999999999999.99995", "9999999999999.999999"):
        answer = await board.post(
            f"/kpis/{revenue['id']}/targets", {"period": "2026-01", "target": value}
        )
        problem = assert_problem(answer, 422)
        assert problem["type"] == "/problems/validation-error"
        assert problem["errors"][0]["location"] == "body.target"
        answer = await board.post(
            f"/kpis/{revenue['id']}/actuals", {"period": "2026-01", "actual": value}
        )
        assert assert_problem(answer, 422)["errors"][0]["location"] == "body.actual"
    assert await stored_events(services, board.alliance_id) == before

    largest = await board.post(
        f"/kpis/{revenue['id']}/targets", {"period": "2026-01", "target": "9999999999999.99994"}
    )
    assert largest.status_code == 200, largest.text
    assert largest.json()["target"] == "9999999999999.9999"
