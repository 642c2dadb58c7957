"""A partner's private scorecard (ADR 0009): its private KPIs are still judged like every
other KPI, by the partners' thresholds, and still fed by its CRM, while all of it stays on a
stream of its own that moves nothing another partner can see."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg

from concord.events import private_stream
from tests.integration.meters import eventually
from tests.integration.scorecard.conftest import PARTNER_A, PARTNER_B, Board, crm_of
from tests.integration.scorecard.support import (
    Services,
    actual,
    card,
    names,
    stored_events,
    target,
    through,
)


async def envelopes(services: Services, stream: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(services.database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch(
            "SELECT envelope FROM scorecard.events WHERE stream_id = $1 ORDER BY stream_version",
            stream,
        )
    finally:
        await conn.close()
    return [json.loads(row["envelope"]) for row in rows]


async def private_margin(board: Board, value: str) -> dict[str, Any]:
    """Acme's private margin KPI with January's target of 40 and `value` as its actual."""
    margin = await board.kpi(name="Acme margin", unit="%", currency=None, visibility="private")
    await target(board, margin["id"], "2026-01", "40")
    return await actual(board, margin["id"], "2026-01", value)


def changes(history: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(c["change"], c["status"]) for c in history["changes"]]


async def test_a_private_kpi_is_judged_on_its_own_partners_private_scorecard(
    board: Board, services: Services
) -> None:
    """Acme's private KPI falls off track and recovers as any KPI does: the crossings are on
    acme's private stream, marked as kept for acme, and in acme's history; the shared stream
    and its version never hear of them."""
    opened = await board.page(PARTNER_B, period="2026-01", min_version=1)
    fell = await private_margin(board, "20")
    assert (fell["status"], fell["version"], fell["private_version"]) == (
        "off_track",
        opened["version"],
        4,  # defined, target, actual, off track
    )
    recovered = await actual(board, fell["kpi_id"], "2026-01", "39")
    assert recovered["status"] == "on_track"

    stream = private_stream(f"scorecard-{board.alliance_id}", PARTNER_A)
    kept = await envelopes(services, stream)
    assert [e["type"].split(".")[3] for e in kept] == [
        "kpi_defined",
        "kpi_target_set",
        "kpi_actual_recorded",
        "kpi_went_off_track",
        "kpi_actual_corrected",
        "kpi_recovered",
    ]
    assert {e["privateto"] for e in kept} == {PARTNER_A}
    assert names(await stored_events(services, board.alliance_id)) == ["scorecard_opened"]

    history = await board.get(f"/kpis/{fell['kpi_id']}/history", min_version=through(recovered))
    assert changes(history.json()) == [
        ("target_set", None),
        ("actual_recorded", None),
        ("went_off_track", "off_track"),
        ("actual_corrected", None),
        ("recovered", "on_track"),
    ]
    page = await board.page(period="2026-01", min_version=through(recovered))
    assert (page["version"], page["private_version"]) == (1, 6)
    assert card(page, fell["kpi_id"])["status"] == "on_track"
    theirs = await board.page(PARTNER_B, period="2026-01")
    assert (theirs["version"], theirs["private_version"]) == (1, 0)


async def test_new_thresholds_rejudge_a_quiet_private_scorecard(
    board: Board, services: Services
) -> None:
    """Acme's private KPI at 85% of target is at risk. Globex raises the off-track line to
    90%: nobody of acme asks, yet acme's private scorecard adopts the line moments later and
    its KPI goes off track there; lowering the line brings it back. Globex's answers are the
    shared scorecard's alone."""
    margin = (await private_margin(board, "34"))["kpi_id"]
    stricter = {"on_track_from": "0.95", "off_track_below": "0.90"}
    answer = await board.post("/thresholds", stricter, PARTNER_B)
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == '"2"'
    assert (answer.json()["version"], answer.json()["private_version"]) == (2, 0)

    async def history() -> list[tuple[str, str | None]]:
        read = await board.get(f"/kpis/{margin}/history")
        return changes(read.json())

    await eventually(lambda: _has(history, ("went_off_track", "off_track")))
    await board.ok("/thresholds", {"on_track_from": "0.95", "off_track_below": "0.80"}, PARTNER_B)
    await eventually(lambda: _has(history, ("recovered", "at_risk")))

    stream = private_stream(f"scorecard-{board.alliance_id}", PARTNER_A)
    kept = await envelopes(services, stream)
    adopted = [e for e in kept if e["type"].split(".")[3] == "thresholds_adopted"]
    assert [Decimal(e["data"]["thresholds"]["off_track_below"]) for e in adopted] == [
        Decimal("0.9"),
        Decimal("0.8"),
    ]
    reaction = "scorecard/reaction/private_scorecards_adopt_thresholds"
    assert {(e["actorsub"], e.get("actororg")) for e in adopted} == {(reaction, None)}
    assert "kpi_went_off_track" not in names(await stored_events(services, board.alliance_id))
    page = await board.page(period="2026-01")
    assert card(page, margin)["status"] == "at_risk"


async def _has(read: Any, change: tuple[str, str | None]) -> bool:
    return change in await read()


async def test_acmes_crm_feeds_its_private_kpi_on_its_private_scorecard(
    board: Board, services: Services
) -> None:
    """The pipeline acme's CRM reports is shared (it feeds whichever KPI it does); the actual
    it gives acme's private pipeline KPI is on acme's private scorecard, seen by acme only."""
    fed = await board.kpi(name="Acme pipeline", feed="pipeline_value", visibility="private")
    crm = await crm_of(board, PARTNER_A)
    sent = await crm.send(
        {
            "type": "opportunity.created",
            "id": "evt-1",
            "occurred_at": "2026-01-15T10:00:00Z",
            "opportunity_id": "opp-1",
            "account": "Banco Uno",
            "amount": "5000",
            "currency": "EUR",
            "stage": "qualify",
            "close_date": "2026-03-31",
        }
    )
    report = sent.json()
    assert (report["accepted"], report["version"], report["private_version"]) == (1, 2, 2)

    page = await board.page(period="2026-01", min_version=through(report))
    assert Decimal(card(page, fed["id"])["actual"]) == 5000
    assert names(await stored_events(services, board.alliance_id)) == [
        "scorecard_opened",
        "opportunity_created",
    ]
    assert names(await stored_events(services, board.alliance_id, PARTNER_A)) == [
        "kpi_defined",
        "kpi_actual_recorded",
    ]
    theirs = await board.get("", PARTNER_B, period="2026-01", min_version=report["version"])
    assert fed["id"] not in theirs.text and "Acme pipeline" not in theirs.text


async def test_an_objective_names_a_private_kpi_on_its_partners_private_scorecard(
    board: Board, services: Services
) -> None:
    """An objective is shared: its event names the shared KPIs that measure it, and acme's
    private one is named on acme's private scorecard, joined for acme when it reads."""
    shared = await board.kpi()
    margin = (await private_margin(board, "40"))["kpi_id"]
    defined = await board.ok(
        "/objectives",
        {"name": "Growth", "dimension": "commercial", "kpi_ids": [shared["id"], margin]},
    )
    assert defined["kpi_ids"] == [shared["id"], margin]
    [objective] = [
        d for n, d in await stored_events(services, board.alliance_id) if "objective" in n
    ]
    assert objective["kpi_ids"] == [shared["id"]]
    mine = await board.page(period="2026-01", min_version=through(defined))
    assert mine["strategy_map"]["objectives"][0]["kpi_ids"] == [shared["id"], margin]
    theirs = await board.page(PARTNER_B, period="2026-01", min_version=defined["version"])
    assert theirs["strategy_map"]["objectives"][0]["kpi_ids"] == [shared["id"]]
