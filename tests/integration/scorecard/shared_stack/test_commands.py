"""Every scorecard command through HTTP, against a real PostgreSQL and NATS: what the alliance
manager asks for, what the scorecard page, the histories and the event store then show."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from concord.db import leadership
from concord.runtime import ServiceRuntime
from scorecard.views.export import CSV_COLUMNS
from tests.conftest import auth, charter
from tests.contract.conftest import assert_problem
from tests.integration.scorecard.conftest import (
    PARTNER_A,
    PARTNER_B,
    STRANGER,
    Board,
    kpi,
)
from tests.integration.scorecard.support import (
    Services,
    actual,
    benefit,
    card,
    caught_up,
    initiative,
    names,
    numbers,
    of_type,
    progress,
    stored_events,
    target,
)

# --- opening ---------------------------------------------------------------------------------


async def test_a_scorecard_is_opened_once(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient, services: Services
) -> None:
    """Each alliance has one scorecard: opening it again is refused, nothing is written."""
    created = await governance.post("/alliances", json=charter(), headers=auth())
    alliance_id = created.json()["id"]
    known = await scorecard.get(
        f"/alliances/{alliance_id}", params={"min_version": 1}, headers=auth()
    )
    assert known.is_success
    path = f"/alliances/{alliance_id}/scorecard"
    setup = {"currency": "EUR", "thresholds": {"on_track_from": "0.9"}}

    opened = await scorecard.post(path, json=setup, headers=auth())
    assert opened.status_code == 201, opened.text
    assert opened.headers["Location"] == path
    assert opened.headers["ETag"] == '"1"'
    summary = opened.json()
    assert summary["alliance_id"] == alliance_id
    assert summary["currency"] == "EUR"
    assert Decimal(summary["thresholds"]["on_track_from"]) == Decimal("0.9")
    assert (summary["kpis"], summary["objectives"], summary["initiatives"]) == (0, 0, 0)
    assert summary["version"] == 1

    again = await scorecard.post(path, json={"currency": "USD"}, headers=auth(PARTNER_B))
    problem = assert_problem(again, 422)
    assert problem["type"] == "/problems/rule-violated"
    assert "already open" in problem["detail"]
    assert names(await stored_events(services, alliance_id)) == ["scorecard_opened"]

    page = await Board(scorecard, alliance_id).page(period="2026-01", min_version=1)
    assert page["currency"] == "EUR"
    assert page["alliance_name"] == "Acme x Globex"


async def test_a_scorecard_is_opened_only_for_an_alliance_the_caller_is_partner_of(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient
) -> None:
    """An alliance nobody created, or one the caller's organisation is not in, is not found."""
    created = await governance.post("/alliances", json=charter(), headers=auth())
    alliance_id = created.json()["id"]
    known = await scorecard.get(
        f"/alliances/{alliance_id}", params={"min_version": 1}, headers=auth()
    )
    assert known.is_success

    setup = {"currency": "EUR"}
    unknown, stranger = await asyncio.gather(
        scorecard.post(f"/alliances/{uuid.uuid4()}/scorecard", json=setup, headers=auth()),
        scorecard.post(f"/alliances/{alliance_id}/scorecard", json=setup, headers=auth(STRANGER)),
    )
    assert assert_problem(unknown, 404)["detail"] == assert_problem(stranger, 404)["detail"]
    opened = await scorecard.post(f"/alliances/{alliance_id}/scorecard", json=setup, headers=auth())
    assert opened.status_code == 201, opened.text  # the stranger's attempt left nothing behind


async def test_nothing_is_recorded_on_a_scorecard_that_is_not_open(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient
) -> None:
    """KPIs live on a scorecard: before it is opened there is none to add them to or to read."""
    created = await governance.post("/alliances", json=charter(), headers=auth())
    board = Board(scorecard, created.json()["id"])
    known = await scorecard.get(
        f"/alliances/{board.alliance_id}", params={"min_version": 1}, headers=auth()
    )
    assert known.is_success

    defined, read = await asyncio.gather(board.post("/kpis", kpi()), board.get(""))
    assert "no scorecard" in assert_problem(defined, 404)["detail"]
    assert "no scorecard" in assert_problem(read, 404)["detail"]


# --- thresholds ------------------------------------------------------------------------------


async def test_changing_thresholds_rejudges_every_kpi(board: Board, services: Services) -> None:
    """At 90% of target a KPI is at risk under the default 95% bar; lowering the bar to 90%
    puts it on track; raising the off-track line above 90% puts it off track."""
    revenue = await board.kpi()
    await target(board, revenue["id"], "2026-01", "100")
    recorded = await actual(board, revenue["id"], "2026-01", "90")
    assert recorded["status"] == "at_risk"
    before = await board.page(period="2026-01", min_version=recorded["version"])
    assert card(before, revenue["id"])["status"] == "at_risk"

    lenient = await board.ok("/thresholds", {"on_track_from": "0.90", "off_track_below": "0.80"})
    assert Decimal(lenient["thresholds"]["on_track_from"]) == Decimal("0.90")
    assert lenient["kpis"] == 1
    page = await board.page(period="2026-01", min_version=lenient["version"])
    assert Decimal(page["thresholds"]["on_track_from"]) == Decimal("0.90")
    assert card(page, revenue["id"])["status"] == "on_track"

    strict = await board.ok("/thresholds", {"on_track_from": "0.99", "off_track_below": "0.95"})
    page = await board.page(period="2026-01", min_version=strict["version"])
    assert card(page, revenue["id"])["status"] == "off_track"
    [went] = of_type(await stored_events(services, board.alliance_id), "kpi_went_off_track")
    assert (went["kpi_id"], went["period"], went["previous_status"]) == (
        revenue["id"],
        "2026-01",
        "on_track",
    )

    same = await board.ok("/thresholds", {"on_track_from": "0.99", "off_track_below": "0.95"})
    assert same["version"] == strict["version"]  # unchanged thresholds write nothing


async def test_thresholds_must_be_ordered(board: Board) -> None:
    """The off-track line cannot sit above the on-track bar."""
    answer = await board.post("/thresholds", {"on_track_from": "0.7", "off_track_below": "0.8"})
    assert assert_problem(answer, 422)["type"] == "/problems/validation-error"


# --- KPIs ------------------------------------------------------------------------------------


async def test_defining_a_kpi_places_it_on_the_page(board: Board) -> None:
    """A new KPI answers 201 with where it lives; a headline KPI is one of the goals, the others
    sit under leading or lagging, in their dimension."""
    answer = await board.post("/kpis", kpi(headline=True, description="Booked, net of returns"))
    assert answer.status_code == 201, answer.text
    goal = answer.json()
    assert answer.headers["Location"] == f"{board.base}/kpis/{goal['id']}"
    assert answer.headers["ETag"] == f'"{goal["version"]}"'
    assert goal["name"] == "Joint revenue"
    assert (goal["owner_org"], goal["visibility"], goal["cadence"]) == ("acme", "shared", "month")

    trained = await board.kpi(
        PARTNER_B,
        name="Engineers certified",
        dimension="technical",
        kind="leading",
        unit="engineers",
        currency=None,
    )
    page = await board.page(period="2026-01", min_version=trained["version"])
    assert [c["id"] for c in page["goals"]] == [goal["id"]]
    assert [c["id"] for c in page["leading"]["technical"]] == [trained["id"]]
    assert page["lagging"]["commercial"] == []
    shown = card(page, trained["id"])
    assert shown["owner_org"] == PARTNER_B
    assert (shown["period"], shown["status"], shown["target"], shown["actual"]) == (
        "2026-01",
        "no_target",
        None,
        None,
    )


async def test_a_crm_fed_kpi_of_money_needs_a_currency(board: Board) -> None:
    """Pipeline value comes from the CRM in a currency: a KPI fed by it must say which."""
    answer = await board.post("/kpis", kpi(feed="pipeline_value", currency=None))
    problem = assert_problem(answer, 422)
    assert problem["type"] == "/problems/validation-error"
    assert any("currency" in e["message"] for e in problem["errors"])

    counted = await board.post("/kpis", kpi(name="Proposals", feed="proposals_submitted"))
    assert assert_problem(counted, 422)["type"] == "/problems/validation-error"


async def test_kpi_rules(board: Board) -> None:
    """A KPI's name is unique, its owner is a partner, and a CRM feed is the feeder's own."""
    await board.kpi()
    cases = [
        (kpi(name="joint REVENUE"), "name"),
        (kpi(PARTNER_B, name="Partner KPI", owner_org=STRANGER), "owner_org"),
        (kpi(PARTNER_B, name="Fed", feed="pipeline_value"), "owner_org"),
        (kpi(PARTNER_B, name="Secret", visibility="private"), "owner_org"),
    ]
    for body, field in cases:
        answer = await board.post("/kpis", body)
        problem = assert_problem(answer, 422)
        assert problem["type"] == "/problems/rule-violated"
        assert problem["errors"][0]["location"] == field


async def join(board: Board, governance: httpx.AsyncClient, org: str) -> None:
    """Governance adds a partner to the alliance; wait until scorecard knows it."""
    added = await governance.post(
        f"/alliances/{board.alliance_id}/partners",
        json={"org_id": org, "name": org.capitalize()},
        headers=auth(),
    )
    assert added.status_code == 200, added.text
    known = await board.client.get(
        f"/alliances/{board.alliance_id}",
        params={"min_version": added.json()["version"]},
        headers=auth(org),
    )
    assert known.status_code == 200, known.text
    assert org in [p["org_id"] for p in known.json()["partners"]]


async def test_a_partner_who_joins_later_records_benefits(
    board: Board, governance: httpx.AsyncClient
) -> None:
    """A partner who joins the alliance after its scorecard was opened sees it and gains from it."""
    await join(board, governance, "umbrella")
    page = await board.page("umbrella", period="2026-01", min_version=1)
    assert [p["org_id"] for p in page["balance_of_benefits"]["partners"]] == [
        "acme",
        "globex",
        "umbrella",
    ]
    recorded = await board.ok("/benefits", benefit("umbrella", "10", "2026-01"), "umbrella")
    assert recorded["entry"]["partner_org"] == "umbrella"


async def test_a_partner_who_joins_later_keeps_its_own_kpis(
    board: Board, governance: httpx.AsyncClient
) -> None:
    """A partner who joins the alliance after its scorecard was opened defines and keeps KPIs
    and initiatives of its own, like the founding partners."""
    await join(board, governance, "umbrella")
    defined = await board.post("/kpis", kpi("umbrella", name="Umbrella leads"), "umbrella")
    assert defined.status_code == 201, defined.text
    launched = await board.post("/initiatives", initiative(owner_org="umbrella"), "umbrella")
    assert launched.status_code == 201, launched.text


# --- targets and actuals ---------------------------------------------------------------------


async def test_only_the_kpi_owner_sets_its_target(board: Board) -> None:
    """Acme keeps the numbers of Acme's KPI: Globex may read them but not set them."""
    revenue = await board.kpi()
    refused = await board.post(
        f"/kpis/{revenue['id']}/targets", {"period": "2026-01", "target": "100"}, PARTNER_B
    )
    assert assert_problem(refused, 403)["type"] == "/problems/forbidden"

    answer = await board.post(
        f"/kpis/{revenue['id']}/targets", {"period": "2026-01", "target": "100"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == f'"{answer.json()["version"]}"'
    body = answer.json()
    assert (body["period"], Decimal(body["target"]), body["actual"]) == ("2026-01", 100, None)
    assert body["status"] == "no_data"

    ghost = await board.post(f"/kpis/{uuid.uuid4()}/targets", {"period": "2026-01", "target": "1"})
    assert_problem(ghost, 404)


async def test_a_target_names_a_period_of_the_kpis_cadence(board: Board) -> None:
    """A monthly KPI takes monthly targets, a quarterly one quarterly targets."""
    monthly = await board.kpi()
    quarterly = await board.kpi(name="Joint wins", unit="deals", currency=None, cadence="quarter")

    for kpi_id, period in ((monthly["id"], "2026-Q1"), (quarterly["id"], "2026-01")):
        answer = await board.post(f"/kpis/{kpi_id}/targets", {"period": period, "target": "5"})
        problem = assert_problem(answer, 422)
        assert problem["errors"][0]["location"] == "period"

    assert (await target(board, quarterly["id"], "2026-Q1", "5"))["period"] == "2026-Q1"
    malformed = await board.post(
        f"/kpis/{monthly['id']}/targets", {"period": "2026-13", "target": "5"}
    )
    assert assert_problem(malformed, 422)["type"] == "/problems/validation-error"


async def test_actuals_and_corrections_are_kept_in_the_kpi_history(board: Board) -> None:
    """Every change to a KPI's numbers stays in its history with who made it: the target, the
    first actual, each correction, and the moments it went off track and recovered."""
    revenue = await board.kpi()
    kpi_id = revenue["id"]
    await target(board, kpi_id, "2026-01", "100")
    first = await actual(board, kpi_id, "2026-01", "90", note="From the finance close")
    assert (first["status"], Decimal(first["attainment"])) == ("at_risk", Decimal("0.9"))
    dropped = await actual(board, kpi_id, "2026-01", "70")
    assert dropped["status"] == "off_track"
    back = await actual(board, kpi_id, "2026-01", "96")
    assert back["status"] == "on_track"

    history = await board.get(f"/kpis/{kpi_id}/history", min_version=back["version"])
    assert history.status_code == 200, history.text
    body = history.json()
    assert body["kpi"]["id"] == kpi_id
    [point] = body["series"]
    assert point["period"] == "2026-01"
    assert numbers(target=point["target"], actual=point["actual"]) == numbers(
        target="100", actual="96"
    )
    assert (point["status"], Decimal(point["attainment"])) == ("on_track", Decimal("0.96"))

    changes = [
        (
            c["change"],
            c["period"],
            *numbers(old=c["old_value"], new=c["new_value"]).values(),
            c["status"],
            c["source"],
            c["note"],
            c["by_org"],
            c["by"],
        )
        for c in body["changes"]
    ]
    acme = ("acme", "alice")
    d = Decimal
    assert changes == [
        ("target_set", "2026-01", None, d(100), None, None, None, *acme),
        (
            "actual_recorded",
            "2026-01",
            None,
            d(90),
            None,
            "manual",
            "From the finance close",
            *acme,
        ),
        ("actual_corrected", "2026-01", d(90), d(70), None, "manual", None, *acme),
        ("went_off_track", "2026-01", None, d(70), "off_track", None, None, None, None),
        ("actual_corrected", "2026-01", d(70), d(96), None, "manual", None, *acme),
        ("recovered", "2026-01", None, d(96), "on_track", None, None, None, None),
    ]


async def test_going_off_track_and_recovering_are_events(board: Board, services: Services) -> None:
    """Falling below 80% of target is news (KpiWentOffTrack), and so is climbing back to 95%
    (KpiRecovered): both are in the event store, right after the change that caused them."""
    revenue = await board.kpi()
    await target(board, revenue["id"], "2026-01", "100")
    await actual(board, revenue["id"], "2026-01", "70")
    await actual(board, revenue["id"], "2026-01", "98")

    events = await stored_events(services, board.alliance_id)
    assert names(events) == [
        "scorecard_opened",
        "kpi_defined",
        "kpi_target_set",
        "kpi_actual_recorded",
        "kpi_went_off_track",
        "kpi_actual_corrected",
        "kpi_recovered",
    ]
    [went] = of_type(events, "kpi_went_off_track")
    assert (went["kpi_id"], went["period"], went["owner_org"], went["visibility"]) == (
        revenue["id"],
        "2026-01",
        "acme",
        "shared",
    )
    assert numbers(target=went["target"], actual=went["actual"]) == numbers(
        target="100", actual="70"
    )
    assert went["previous_status"] == "no_data"
    [recovered] = of_type(events, "kpi_recovered")
    assert (recovered["status"], Decimal(recovered["actual"])) == ("on_track", Decimal("98"))

    again = await actual(board, revenue["id"], "2026-01", "98")  # the same value: no change
    assert again["version"] == len(events)


async def test_a_crm_fed_kpi_takes_no_manual_actual(board: Board) -> None:
    """A KPI the CRM feeds is corrected in the CRM, not by hand."""
    fed = await board.kpi(name="Pipeline", feed="pipeline_value")
    answer = await board.post(f"/kpis/{fed['id']}/actuals", {"period": "2026-01", "actual": "5"})
    assert "CRM" in assert_problem(answer, 422)["detail"]


async def test_three_rising_months_point_up(board: Board) -> None:
    """Direction compares the month with the mean of up to three months before it."""
    up = await board.kpi()
    down = await board.kpi(name="Days to close", unit="days", currency=None)
    for month, rising, falling in (("01", "100", "50"), ("02", "110", "45"), ("03", "130", "30")):
        await actual(board, up["id"], f"2026-{month}", rising)
        last = await actual(board, down["id"], f"2026-{month}", falling)

    march = await board.page(period="2026-03", min_version=last["version"])
    assert card(march, up["id"])["direction"] == "up"
    assert card(march, down["id"])["direction"] == "down"
    assert card(march, up["id"])["status"] == "no_target"
    january = await board.page(period="2026-01")
    assert card(january, up["id"])["direction"] is None  # nothing earlier to compare with
    quarter = await board.page(period="2026-Q1")
    assert card(quarter, up["id"])["period"] == "2026-03"  # a monthly KPI in a quarter view
    assert Decimal(card(quarter, up["id"])["actual"]) == Decimal("130")


# --- the strategy map ------------------------------------------------------------------------


async def test_linked_objectives_make_the_strategy_map(board: Board) -> None:
    """Objectives are linked cause to effect; the page shows what each drives and is driven by."""
    revenue = await board.kpi()
    skills = await board.ok(
        "/objectives", {"name": "Skilled sellers", "dimension": "cultural", "kpi_ids": []}
    )
    offer = await board.ok("/objectives", {"name": "Co-sold offering", "dimension": "technical"})
    growth = await board.ok(
        "/objectives",
        {"name": "Grow revenue", "dimension": "commercial", "kpi_ids": [revenue["id"]]},
    )
    assert growth["kpi_ids"] == [revenue["id"]]

    linked = await board.ok(
        "/strategy-map/links", {"cause_id": skills["id"], "effect_id": offer["id"]}
    )
    assert linked["drives"] == [offer["id"]]
    last = await board.ok(
        "/strategy-map/links", {"cause_id": offer["id"], "effect_id": growth["id"]}, PARTNER_B
    )
    repeat = await board.ok(
        "/strategy-map/links", {"cause_id": offer["id"], "effect_id": growth["id"]}
    )
    assert repeat["version"] == last["version"]  # linked already: nothing new

    page = await board.page(period="2026-01", min_version=last["version"])
    nodes = {o["name"]: o for o in page["strategy_map"]["objectives"]}
    assert list(nodes) == ["Skilled sellers", "Co-sold offering", "Grow revenue"]
    assert (nodes["Skilled sellers"]["drives"], nodes["Skilled sellers"]["driven_by"]) == (
        [offer["id"]],
        [],
    )
    assert (nodes["Co-sold offering"]["drives"], nodes["Co-sold offering"]["driven_by"]) == (
        [growth["id"]],
        [skills["id"]],
    )
    assert (nodes["Grow revenue"]["drives"], nodes["Grow revenue"]["driven_by"]) == (
        [],
        [offer["id"]],
    )
    assert nodes["Grow revenue"]["kpi_ids"] == [revenue["id"]]
    assert nodes["Grow revenue"]["dimension"] == "commercial"


async def test_the_strategy_map_has_no_loops(board: Board) -> None:
    """Causes drive effects: a link back to a cause, or to itself, is refused."""
    ids = []
    for name in ("A", "B", "C"):
        ids.append((await board.ok("/objectives", {"name": name, "dimension": "strategic"}))["id"])
    a, b, c = ids
    await board.ok("/strategy-map/links", {"cause_id": a, "effect_id": b})
    await board.ok("/strategy-map/links", {"cause_id": b, "effect_id": c})

    loop = assert_problem(
        await board.post("/strategy-map/links", {"cause_id": c, "effect_id": a}), 422
    )
    assert loop["type"] == "/problems/rule-violated"
    assert "loop" in loop["detail"]
    itself = await board.post("/strategy-map/links", {"cause_id": a, "effect_id": a})
    assert assert_problem(itself, 422)["errors"][0]["location"] == "effect_id"
    ghost = await board.post("/strategy-map/links", {"cause_id": a, "effect_id": str(uuid.uuid4())})
    assert assert_problem(ghost, 422)["errors"][0]["location"] == "effect_id"
    twin = await board.post("/objectives", {"name": "a", "dimension": "strategic"})
    assert assert_problem(twin, 422)["errors"][0]["location"] == "name"


# --- initiatives -----------------------------------------------------------------------------


async def test_initiative_progress_on_the_page(board: Board) -> None:
    """The page shows an initiative as of the month's end: its completion and status, its
    direction against the month before, and whether it is overdue (due, and not done)."""
    answer = await board.post("/initiatives", initiative())
    assert answer.status_code == 201, answer.text
    launched = answer.json()
    assert answer.headers["Location"] == f"{board.base}/initiatives/{launched['id']}"
    assert (launched["completion"], launched["as_of"]) == (0, None)
    path = f"/initiatives/{launched['id']}/progress"
    await board.ok(path, progress(20, "2026-01-15"))
    reported = await board.ok(path, progress(50, "2026-02-10", "at_risk", note="Two sellers left"))
    assert (reported["completion"], reported["as_of"]) == (50, "2026-02-10")

    def shown(page: dict[str, Any]) -> tuple[Any, ...]:
        [c] = page["initiatives"]
        return c["completion"], c["status"], c["direction"], c["as_of"], c["overdue"]

    december = await board.page(period="2025-12", min_version=reported["version"])
    assert shown(december) == (0, "planned", None, None, False)
    january = await board.page(period="2026-01")
    assert shown(january) == (20, "in_progress", "up", "2026-01-15", False)  # due on its last day
    february = await board.page(period="2026-02")
    assert shown(february) == (50, "at_risk", "up", "2026-02-10", True)
    march = await board.page(period="2026-03")
    assert shown(march) == (50, "at_risk", "flat", "2026-02-10", True)

    done = await board.ok(path, progress(100, "2026-03-05", "done"))
    march = await board.page(period="2026-03", min_version=done["version"])
    assert shown(march) == (100, "done", "up", "2026-03-05", False)  # done is never overdue
    [c] = march["initiatives"]
    assert (c["name"], c["owner_org"], c["owner_name"], c["due_date"]) == (
        "Co-sell playbook",
        "acme",
        "Alice Martin",
        "2026-01-31",
    )


async def test_only_the_initiative_owner_reports_progress_and_never_back_in_time(
    board: Board,
) -> None:
    """Acme reports on Acme's initiative; a report older than the last one is refused; a done
    initiative is complete."""
    launched = await board.ok("/initiatives", initiative())
    path = f"/initiatives/{launched['id']}/progress"
    await board.ok(path, progress(40, "2026-02-01"))

    assert_problem(await board.post(path, progress(50, "2026-02-02"), PARTNER_B), 403)
    older = await board.post(path, progress(45, "2026-01-31"))
    assert assert_problem(older, 422)["errors"][0]["location"] == "as_of"
    half_done = await board.post(path, progress(50, "2026-02-03", "done"))
    assert assert_problem(half_done, 422)["type"] == "/problems/validation-error"
    ghost = await board.post(f"/initiatives/{uuid.uuid4()}/progress", progress(1, "2026-02-03"))
    assert_problem(ghost, 404)
    outsider = await board.post("/initiatives", initiative(name="Other", owner_org=STRANGER))
    assert assert_problem(outsider, 422)["errors"][0]["location"] == "owner_org"
    twin = await board.post("/initiatives", initiative(name="CO-SELL playbook"))
    assert assert_problem(twin, 422)["errors"][0]["location"] == "name"


async def test_initiative_history_lists_every_report(board: Board) -> None:
    """An initiative's history: the card as of a period and every progress report, by whom."""
    launched = await board.ok("/initiatives", initiative(owner_org=PARTNER_B), PARTNER_B)
    path = f"/initiatives/{launched['id']}/progress"
    await board.ok(path, progress(10, "2026-01-10"), PARTNER_B)
    last = await board.ok(path, progress(35, "2026-02-10", note="Pilot live"), PARTNER_B)

    answer = await board.get(
        f"/initiatives/{launched['id']}/history", period="2026-02", min_version=last["version"]
    )
    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert history["initiative"]["id"] == launched["id"]
    assert (history["initiative"]["completion"], history["initiative"]["direction"]) == (35, "up")
    assert [
        (r["as_of"], r["completion"], r["status"], r["note"], r["by_org"], r["by"])
        for r in history["progress"]
    ] == [
        ("2026-01-10", 10, "in_progress", None, "globex", "alice"),
        ("2026-02-10", 35, "in_progress", "Pilot live", "globex", "alice"),
    ]
    assert_problem(await board.get(f"/initiatives/{uuid.uuid4()}/history"), 404)


# --- benefits --------------------------------------------------------------------------------


async def test_the_benefits_ledger_pages_with_a_cursor(board: Board) -> None:
    """The ledger lists benefits in the order they were recorded, a page at a time."""
    recorded = [
        await board.ok("/benefits", benefit(PARTNER_A, "100.50", "2026-01")),
        await board.ok("/benefits", benefit(PARTNER_B, "200", "2026-01"), PARTNER_B),
        await board.ok("/benefits", benefit(PARTNER_A, "300", "2026-02", kind="cost_saved")),
    ]
    assert recorded[0]["entry"]["partner_org"] == PARTNER_A

    first = await board.get("/benefits", limit=2, min_version=recorded[-1]["version"])
    assert first.status_code == 200, first.text
    page = first.json()
    assert [i["id"] for i in page["items"]] == [r["id"] for r in recorded[:2]]
    assert page["next_cursor"]
    item = page["items"][1]
    assert (item["partner_org"], Decimal(item["amount"]), item["currency"]) == (
        "globex",
        Decimal(200),
        "EUR",
    )
    assert (item["recorded_by_org"], item["recorded_by"], item["visibility"]) == (
        "globex",
        "alice",
        "shared",
    )
    rest = (await board.get("/benefits", limit=2, cursor=page["next_cursor"])).json()
    assert [i["id"] for i in rest["items"]] == [recorded[2]["id"]]
    assert rest["items"][0]["kind"] == "cost_saved"
    assert rest["next_cursor"] is None
    # A cursor is a place in the ledger (shared version.private version), whoever wrote it.
    from_the_start = (await board.get("/benefits", cursor="0.0")).json()
    assert [i["id"] for i in from_the_start["items"]] == [r["id"] for r in recorded]
    beyond = await board.get("/benefits", cursor=f"{'9' * 18}.{'9' * 18}")
    assert (beyond.status_code, beyond.json()["items"]) == (200, [])
    for not_a_cursor in ("not-a-cursor", "12", "1.2.3", "9" * 19 + ".0"):
        refused = assert_problem(await board.get("/benefits", cursor=not_a_cursor), 422)
        assert refused["errors"][0]["location"] == "query.cursor"


async def test_a_benefit_is_a_partners_in_the_ledgers_currency(board: Board) -> None:
    """Benefits are kept in the scorecard's currency, for a partner; a private one is your own."""
    cases = [
        (benefit(STRANGER, "10", "2026-01"), "partner_org"),
        (benefit(PARTNER_A, "10", "2026-01", currency="USD"), "currency"),
        (benefit(PARTNER_B, "10", "2026-01", visibility="private"), "visibility"),
    ]
    for body, field in cases:
        problem = assert_problem(await board.post("/benefits", body), 422)
        assert problem["errors"][0]["location"] == field


async def test_the_balance_of_benefits_tips_and_is_restored(
    board: Board, services: Services
) -> None:
    """Benefits split 65/35 score an imbalance index of 0.30, the default alarm; evening them
    out restores the balance. Both moments are events."""
    await board.ok("/benefits", benefit(PARTNER_A, "650", "2026-01"))
    await board.ok("/benefits", benefit(PARTNER_B, "350", "2026-02"), PARTNER_B)
    last = await board.ok("/benefits", benefit(PARTNER_B, "300", "2026-03"), PARTNER_B)
    await caught_up(services.scorecard_runtime)  # min_version does not wait for the balance

    def split(page: dict[str, Any]) -> tuple[Any, ...]:
        balance = page["balance_of_benefits"]
        return (
            {p["org_id"]: (Decimal(p["amount"]), Decimal(p["share"])) for p in balance["partners"]},
            Decimal(balance["imbalance_index"]),
            balance["imbalanced"],
        )

    february = await board.page(period="2026-02", min_version=last["version"])
    assert split(february) == (
        {"acme": (650, Decimal("0.65")), "globex": (350, Decimal("0.35"))},
        Decimal("0.30"),
        True,
    )
    assert february["balance_of_benefits"]["through_period"] == "2026-02"
    assert Decimal(february["balance_of_benefits"]["threshold"]) == Decimal("0.30")
    march = await board.page(period="2026-03")
    assert split(march) == (
        {"acme": (650, Decimal("0.5")), "globex": (650, Decimal("0.5"))},
        0,
        False,
    )
    before = await board.page(period="2025-12")
    assert split(before) == ({"acme": (0, 0), "globex": (0, 0)}, 0, False)

    events = await stored_events(services, board.alliance_id)
    crossings = [n for n in names(events) if n.startswith("benefit_") and n != "benefit_recorded"]
    assert crossings == ["benefit_imbalance_detected", "benefit_balance_restored"]
    [detected] = of_type(events, "benefit_imbalance_detected")
    assert detected["most_favoured_org"] == "acme"
    assert Decimal(detected["imbalance_index"]) == 1  # acme alone gained, at first
    [restored] = of_type(events, "benefit_balance_restored")
    assert {k: Decimal(v) for k, v in restored["shares"].items()} == {
        "acme": Decimal("0.5"),
        "globex": Decimal("0.5"),
    }


async def test_the_balance_of_benefits_over_time(board: Board, services: Services) -> None:
    """The balance's history: cumulative amounts and shares after each period with benefits."""
    await board.ok("/benefits", benefit(PARTNER_A, "600", "2026-01"))
    await board.ok("/benefits", benefit(PARTNER_B, "200", "2026-03"), PARTNER_B)
    last = await board.ok("/benefits", benefit(PARTNER_B, "200", "2026-03"), PARTNER_B)
    await caught_up(services.scorecard_runtime)  # min_version does not wait for the balance

    answer = await board.get("/balance-of-benefits", min_version=last["version"])
    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert (history["currency"], Decimal(history["threshold"])) == ("EUR", Decimal("0.30"))
    points = [
        (
            p["period"],
            {s["org_id"]: (Decimal(s["amount"]), Decimal(s["share"])) for s in p["partners"]},
            Decimal(p["imbalance_index"]),
            p["imbalanced"],
        )
        for p in history["points"]
    ]
    assert points == [
        ("2026-01", {"acme": (600, 1), "globex": (0, 0)}, 1, True),
        (
            "2026-03",
            {"acme": (600, Decimal("0.6")), "globex": (400, Decimal("0.4"))},
            Decimal("0.2"),
            False,
        ),
    ]


@asynccontextmanager
async def balance_projection_held_back(runtime: ServiceRuntime) -> AsyncIterator[None]:
    """The scorecard board (balance of benefits included) kept from applying events, as
    during a `concord rebuild scorecard_board` or whenever its consumer lags: the pause lease
    makes the live runner let go, and holding its leadership lock keeps it waiting."""
    runner = runtime.runners["scorecard_board"]
    pause = text(
        """INSERT INTO scorecard.projection_checkpoints (projection, last_sequence, paused_until)
           VALUES (:p, 0, now() + interval '30 seconds') ON CONFLICT (projection)
           DO UPDATE SET paused_until = excluded.paused_until"""
    )
    resume = text(
        "UPDATE scorecard.projection_checkpoints SET paused_until = NULL WHERE projection = :p"
    )
    params = {"p": runner.projection.name}
    async with runtime.engine.begin() as conn:
        await conn.execute(pause, params)
    try:
        async with leadership(runtime.engine, runner.lock_name, retry_every=0.1, wait=10):
            async with runtime.engine.begin() as conn:
                await conn.execute(resume, params)
            yield
    finally:
        async with runtime.engine.begin() as conn:
            await conn.execute(resume, params)


async def test_a_page_read_at_a_version_shows_the_benefits_recorded_by_then(
    board: Board, services: Services
) -> None:
    """A manager who records a benefit and reads the page at that version sees it counted in
    the balance of benefits, or is told to retry: never an older balance under the new
    version."""
    try:
        async with balance_projection_held_back(services.scorecard_runtime):
            recorded = await board.ok("/benefits", benefit(PARTNER_A, "100", "2026-01"))
            answer = await board.get("", period="2026-01", min_version=recorded["version"])
    finally:
        await caught_up(services.scorecard_runtime)  # resumed, before the next test reads

    if answer.status_code == 200:
        page = answer.json()
        assert page["version"] >= recorded["version"]
        amounts = {
            p["org_id"]: Decimal(p["amount"]) for p in page["balance_of_benefits"]["partners"]
        }
        assert amounts == {"acme": 100, "globex": 0}
    else:
        assert_problem(answer, 404)


async def test_many_managers_can_read_the_page_at_once(board: Board) -> None:
    """The monthly review: forty people open the scorecard page at the same moment, on a
    service with the default pool (10 connections plus 10 overflow); each gets it promptly."""
    await board.page(period="2026-01", min_version=1)
    reads = [board.get("", period="2026-01") for _ in range(40)]
    try:
        answers = await asyncio.wait_for(asyncio.gather(*reads), timeout=3)
    except TimeoutError:
        answers = []  # the reads are cancelled, which hands their connections back
    recovered = await board.get("", period="2026-01")
    assert recovered.status_code == 200, "the service did not recover for the next tests"
    assert [a.status_code for a in answers] == [200] * 40


# --- export ----------------------------------------------------------------------------------


async def test_the_scorecard_exports_as_csv(board: Board) -> None:
    """The page as a spreadsheet: a header row, a row per KPI, initiative and partner; text a
    partner typed never becomes a formula."""
    revenue = await board.kpi(headline=True)
    trap = await board.kpi(
        name='=HYPERLINK("http://evil.example","Click")', unit="deals", currency=None
    )
    await target(board, revenue["id"], "2026-01", "100")
    await actual(board, revenue["id"], "2026-01", "97")
    last = await actual(board, trap["id"], "2026-01", "-5")

    answer = await board.get("/export.csv", period="2026-01", min_version=last["version"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="scorecard-{board.alliance_id}-2026-01.csv"'
    )
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    table = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    goal = next(r for r in table if r["section"] == "goal")
    assert goal["name"] == "Joint revenue"
    assert (goal["dimension"], goal["kind"], goal["owner_org"], goal["period"]) == (
        "commercial",
        "lagging",
        "acme",
        "2026-01",
    )
    assert (Decimal(goal["target"]), Decimal(goal["actual"]), goal["status"]) == (
        100,
        97,
        "on_track",
    )
    lagging = next(r for r in table if r["section"] == "lagging")
    assert lagging["name"] == '\'=HYPERLINK("http://evil.example","Click")'
    assert Decimal(lagging["actual"]) == -5  # a negative number stays a number, unquoted
    assert [r["owner_org"] for r in table if r["section"] == "benefit"] == ["acme", "globex"]


# --- idempotency, preconditions, roles ---------------------------------------------------------


async def test_an_idempotency_key_replays_the_first_answer(
    board: Board, services: Services
) -> None:
    """A command re-sent with the same Idempotency-Key (a network retry) gets the first answer
    again and records nothing more; the key with another request is refused."""
    headers = {**auth(), "Idempotency-Key": f"define-revenue-{uuid.uuid4()}"}
    path = f"{board.base}/kpis"
    first = await board.client.post(path, json=kpi(), headers=headers)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = await board.client.post(path, json=kpi(), headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]

    events = await stored_events(services, board.alliance_id)
    assert len(of_type(events, "kpi_defined")) == 1
    assert len(events) == 2

    other = await board.client.post(path, json=kpi(name="Other"), headers=headers)
    assert assert_problem(other, 422)["type"] == "/problems/idempotency-key-reused"


async def test_a_stale_if_match_is_refused(board: Board, services: Services) -> None:
    """A change made on an out-of-date view of the scorecard is refused with 412."""
    first = await board.post("/kpis", kpi())
    stale = first.headers["ETag"]
    second = await board.post("/kpis", kpi(name="Joint wins", unit="deals", currency=None))
    current = second.headers["ETag"]

    path = f"{board.base}/thresholds"
    body = {"on_track_from": "0.9"}
    refused = await board.client.post(path, json=body, headers={**auth(), "If-Match": stale})
    assert assert_problem(refused, 412)["type"] == "/problems/precondition-failed"
    assert (
        of_type(await stored_events(services, board.alliance_id), "scorecard_thresholds_changed")
        == []
    )
    accepted = await board.client.post(path, json=body, headers={**auth(), "If-Match": current})
    assert accepted.status_code == 200, accepted.text


async def test_a_viewer_reads_but_does_not_change(board: Board) -> None:
    """Only an alliance manager changes the scorecard; a viewer reads every part of it."""
    revenue = await board.kpi()
    launched = await board.ok("/initiatives", initiative())
    last = await board.ok("/benefits", benefit(PARTNER_A, "10", "2026-01"))
    viewer = auth(PARTNER_B, roles=("viewer",))

    refused = await board.client.post(
        f"{board.base}/kpis", json=kpi(PARTNER_B, name="Mine"), headers=viewer
    )
    assert assert_problem(refused, 403)["type"] == "/problems/forbidden"
    credential = await board.client.post(
        f"/alliances/{board.alliance_id}/integrations/crm/credentials", headers=viewer
    )
    assert_problem(credential, 403)

    params = {"min_version": last["version"]}
    for path in (
        "",
        "/export.csv",
        "/benefits",
        "/balance-of-benefits",
        f"/kpis/{revenue['id']}/history",
        f"/initiatives/{launched['id']}/history",
    ):
        read = await board.client.get(f"{board.base}{path}", params=params, headers=viewer)
        assert read.status_code == 200, (path, read.text)
