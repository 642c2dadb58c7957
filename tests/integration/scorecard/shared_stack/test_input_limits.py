"""Input at the edges of what the scorecard accepts, through HTTP against the real stack: a
number that only breaks its limit once rounded, dates far outside any alliance's life, and a
signed CRM body nested deeper than any batch. Each is refused as a problem, or item by item,
with nothing of it stored, and nothing stays broken after it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from concord.http import MAX_JSON_DEPTH
from tests.contract.conftest import assert_problem
from tests.integration.scorecard.conftest import Board, crm_of
from tests.integration.scorecard.support import (
    Services,
    initiative,
    of_type,
    progress,
    stored_events,
)

EVENTS_PATH = "/integrations/crm/events"


def proposal(id: str, at: str = "2026-03-12T10:00:00Z") -> dict[str, Any]:
    return {"id": id, "type": "proposal.submitted", "occurred_at": at, "account": "Springfield"}


def won(id: str, close_date: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "opportunity.closed_won",
        "occurred_at": "2026-03-28T17:00:00Z",
        "opportunity_id": f"opp-{id}",
        "amount": "1000.00",
        "currency": "EUR",
        "close_date": close_date,
    }


def results(answer: Any) -> list[tuple[str, str]]:
    assert answer.status_code == 200, answer.text
    return [(r["id"], r["status"]) for r in answer.json()["results"]]


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


# --- dates stay within 2000-2199 ------------------------------------------------------------


async def test_dates_outside_the_years_an_alliance_can_live_are_refused(
    board: Board, services: Services
) -> None:
    """An initiative due in 999 or reported as of 2200 is a 422 problem, nothing stored."""
    before = await stored_events(services, board.alliance_id)
    for due in ("0999-12-31", "1999-12-31", "2200-01-01"):
        answer = await board.post("/initiatives", initiative(due_date=due))
        assert assert_problem(answer, 422)["errors"][0]["location"] == "body.due_date"
    assert await stored_events(services, board.alliance_id) == before

    launched = await board.ok("/initiatives", initiative(due_date="2199-12-31"))
    answer = await board.post(
        f"/initiatives/{launched['id']}/progress", progress(10, as_of="0001-01-01")
    )
    assert assert_problem(answer, 422)["errors"][0]["location"] == "body.as_of"


async def test_an_overflowing_crm_moment_is_rejected_on_its_own(
    board: Board, services: Services
) -> None:
    """`0001-01-01T00:00:00+14:00` is before the first UTC moment Python can hold: it is
    that item's rejection, and the good items of its batch are accepted."""
    crm = await crm_of(board)
    answer = await crm.send(
        proposal("p-1"), proposal("p-2", at="0001-01-01T00:00:00+14:00"), proposal("p-3")
    )
    assert results(answer) == [("p-1", "accepted"), ("p-2", "rejected"), ("p-3", "accepted")]
    rejected = answer.json()["results"][1]
    assert rejected["errors"][0]["location"] == "events.1.proposal.submitted.occurred_at"
    stored = of_type(await stored_events(services, board.alliance_id), "proposal_submitted")
    assert [event["crm_event_id"] for event in stored] == ["p-1", "p-3"]


async def test_a_crm_item_from_year_999_is_rejected_and_fed_kpis_still_work(
    board: Board, services: Services
) -> None:
    """An item dated 0999 used to be accepted, and every KPI fed by its metric defined after
    it answered 500 for good. Now it is rejected, and the fed KPI is defined and fed."""
    crm = await crm_of(board)
    answer = await crm.send(
        proposal("old", at="0999-06-01T00:00:00Z"),
        won("w-old", close_date="0999-06-30"),
        proposal("p-1"),
    )
    assert results(answer) == [("old", "rejected"), ("w-old", "rejected"), ("p-1", "accepted")]
    locations = [r["errors"][0]["location"] for r in answer.json()["results"][:2]]
    assert locations == [
        "events.0.proposal.submitted.occurred_at",
        "events.1.opportunity.closed_won.close_date",
    ]

    fed = await board.post(
        "/kpis",
        {
            "name": "Proposals",
            "dimension": "commercial",
            "kind": "leading",
            "unit": "count",
            "owner_org": "acme",
            "feed": "proposals_submitted",
        },
    )
    assert fed.status_code == 201, fed.text
    page = await board.page(period="2026-03", min_version=fed.json()["version"])
    (card,) = page["leading"]["commercial"]
    assert Decimal(card["actual"]) == 1


async def test_a_deeply_nested_signed_body_is_a_bad_request(
    board: Board, services: Services
) -> None:
    """A signed body nested deeper than `MAX_JSON_DEPTH` is a 400 problem, not a 500 or a
    dropped connection, and nothing is written; an item nested a little is read, and
    rejected on its own."""
    crm = await crm_of(board)
    before = await stored_events(services, board.alliance_id)
    for depth in (100_000, MAX_JSON_DEPTH - 1):  # inside {"events": [...]}: one too deep
        nested = ("[" * depth + "]" * depth).encode()
        body = b'{"events": [' + nested + b"]}"
        answer = await board.client.post(EVENTS_PATH, content=body, headers=crm.headers(body))
        assert "nest" in assert_problem(answer, 400)["detail"]

    shallow = json.dumps({"events": [proposal("p-1") | {"account": [[["deep"]]]}]}).encode()
    answer = await board.client.post(EVENTS_PATH, content=shallow, headers=crm.headers(shallow))
    assert results(answer) == [("p-1", "rejected")]
    assert await stored_events(services, board.alliance_id) == before
