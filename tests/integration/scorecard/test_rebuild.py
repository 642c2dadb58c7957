"""Rebuilding scorecard's read models from the event history gives back the same rows, byte
for byte, and the same pages: an SRE can run `concord rebuild` without anyone noticing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from concord.runtime import ServiceRuntime
from tests.conftest import Stack
from tests.integration.scorecard.conftest import PARTNER_A, PARTNER_B, Board, crm_of, open_board
from tests.integration.scorecard.support import (
    PROJECTIONS,
    Services,
    actual,
    benefit,
    caught_up,
    initiative,
    progress,
    running_services,
    target,
)


@pytest.fixture
async def services(stack: Stack) -> AsyncIterator[Services]:
    """A stack of its own: a rebuild replays the whole stream and truncates the tables."""
    async with running_services(stack) as running:
        yield running


def crm_item(kind: str, event_id: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "id": event_id, "occurred_at": at, **fields}


def created(event_id: str, opportunity: str, amount: str, at: str) -> dict[str, Any]:
    return crm_item(
        "opportunity.created",
        event_id,
        at,
        opportunity_id=opportunity,
        account="Banco Uno",
        amount=amount,
        currency="EUR",
        stage="qualify",
        close_date="2026-06-30",
    )


async def rich_scorecard(board: Board) -> int:
    """A scorecard with something of everything; returns its last version."""
    revenue = await board.kpi(headline=True)
    margin = await board.kpi(
        name="Acme margin", unit="%", currency=None, visibility="private", dimension="strategic"
    )
    certified = await board.kpi(
        PARTNER_B,
        name="Engineers certified",
        dimension="technical",
        kind="leading",
        unit="engineers",
        currency=None,
        cadence="quarter",
        good_direction="higher",
    )
    days = await board.kpi(
        name="Days to close", unit="days", currency=None, good_direction="lower", kind="leading"
    )
    await board.kpi(name="Acme pipeline", feed="pipeline_value", kind="leading")
    await board.kpi(name="Proposals", feed="proposals_submitted", unit="proposals", currency=None)

    acme_crm = await crm_of(board, PARTNER_A)
    sent = await acme_crm.send(
        created("a-1", "opp-1", "12000", "2026-01-10T09:00:00Z"),
        created("a-2", "opp-2", "8000.50", "2026-02-03T09:00:00Z"),
        crm_item(
            "opportunity.stage_changed",
            "a-3",
            "2026-02-20T09:00:00Z",
            opportunity_id="opp-1",
            stage="propose",
            amount="15000",
        ),
        crm_item("proposal.submitted", "a-4", "2026-02-21T09:00:00Z", account="Banco Uno"),
        crm_item("key_account.agreed", "a-5", "2026-02-22T09:00:00Z", account="Banco Uno"),
    )
    assert sent.json()["accepted"] == 5, sent.text
    globex_crm = await crm_of(board, PARTNER_B)
    won = await globex_crm.send(
        crm_item(
            "opportunity.closed_won",
            "g-1",
            "2026-03-01T09:00:00Z",
            opportunity_id="g-opp",
            amount="4000",
            currency="EUR",
            close_date="2026-03-01",
        )
    )
    assert won.json()["accepted"] == 1, won.text
    await board.kpi(PARTNER_B, name="Globex wins", feed="closed_won_revenue")  # back-filled

    for month, value in (("01", "70"), ("02", "96"), ("03", "110")):
        await target(board, revenue["id"], f"2026-{month}", "100")
        await actual(board, revenue["id"], f"2026-{month}", value, note=f"Close of 2026-{month}")
    await actual(board, revenue["id"], "2026-02", "78")  # a correction: off track again
    await target(board, margin["id"], "2026-01", "30")
    await actual(board, margin["id"], "2026-01", "31.5")
    await board.ok(
        f"/kpis/{certified['id']}/targets", {"period": "2026-Q1", "target": "12"}, PARTNER_B
    )
    await board.ok(
        f"/kpis/{certified['id']}/actuals", {"period": "2026-Q1", "actual": "10"}, PARTNER_B
    )
    await target(board, days["id"], "2026-01", "30")
    await actual(board, days["id"], "2026-01", "36")
    await board.ok("/thresholds", {"on_track_from": "0.97", "off_track_below": "0.85"})
    await actual(board, revenue["id"], "2026-02", "100")  # recovered

    objectives = [
        await board.ok(
            "/objectives",
            {"name": "Skilled sellers", "dimension": "cultural", "kpi_ids": [certified["id"]]},
        ),
        await board.ok(
            "/objectives",
            {
                "name": "Grow revenue",
                "dimension": "commercial",
                "kpi_ids": [revenue["id"], margin["id"]],
                "description": "The North Star",
            },
        ),
    ]
    await board.ok(
        "/strategy-map/links",
        {"cause_id": objectives[0]["id"], "effect_id": objectives[1]["id"]},
        PARTNER_B,
    )

    playbook = await board.ok("/initiatives", initiative(description="One playbook, two teams"))
    await board.ok(f"/initiatives/{playbook['id']}/progress", progress(30, "2026-01-20"))
    await board.ok(
        f"/initiatives/{playbook['id']}/progress", progress(60, "2026-02-20", "at_risk", note="!")
    )
    lab = await board.ok(
        "/initiatives", initiative(name="Joint lab", owner_org=PARTNER_B, due_date="2026-06-30")
    )
    await board.ok(
        f"/initiatives/{lab['id']}/progress", progress(100, "2026-03-15", "done"), PARTNER_B
    )

    await board.ok("/benefits", benefit(PARTNER_A, "650", "2026-01"))
    await board.ok("/benefits", benefit(PARTNER_B, "350.25", "2026-02"), PARTNER_B)
    await board.ok("/benefits", benefit(PARTNER_A, "999", "2026-02", visibility="private"))
    last = await board.ok(
        "/benefits", benefit(PARTNER_B, "300", "2026-Q1", kind="cost_saved"), PARTNER_B
    )
    return int(last["version"])


async def dump(runtime: ServiceRuntime) -> dict[str, list[str]]:
    """Every row of every table of the two projections, as PostgreSQL prints it, ordered by
    all its columns."""
    tables = [t for p in PROJECTIONS for t in runtime.runners[p].projection.tables]
    rows: dict[str, list[str]] = {}
    async with runtime.engine.connect() as conn:
        for table in tables:
            schema, name = table.split(".")
            columns = (
                await conn.execute(
                    text(
                        """SELECT column_name FROM information_schema.columns
                           WHERE table_schema = :schema AND table_name = :name
                           ORDER BY ordinal_position"""
                    ),
                    {"schema": schema, "name": name},
                )
            ).scalars()
            order = ", ".join(f't."{c}"' for c in columns)
            result = await conn.execute(text(f"SELECT t::text FROM {table} t ORDER BY {order}"))
            rows[table] = list(result.scalars())
    return rows


async def readings(board: Board) -> dict[str, Any]:
    """What each partner reads: its pages, every KPI's history, the ledger, the balance of
    benefits over time and the CSV export."""
    out: dict[str, Any] = {}
    for org in (PARTNER_A, PARTNER_B):
        for period in ("2026-01", "2026-02", "2026-03", "2026-Q1"):
            out[f"{org} page {period}"] = page = await board.page(org, period=period)
        cards = page["goals"] + [
            c for section in ("leading", "lagging") for cs in page[section].values() for c in cs
        ]
        paths = [f"/kpis/{c['id']}/history" for c in cards]
        paths += [f"/initiatives/{i['id']}/history" for i in page["initiatives"]]
        for path in [*paths, "/benefits", "/balance-of-benefits", "/export.csv"]:
            answer = await board.get(path, org)
            assert answer.status_code == 200, answer.text
            out[f"{org} {path}"] = answer.text
    return out


async def test_a_rebuild_gives_back_the_same_read_models(services: Services) -> None:
    """After a rebuild from the event history, every read-model row and every page is exactly
    what the live projections had written."""
    board = await open_board(services.governance, services.scorecard)
    runtime = services.scorecard_runtime
    last = await rich_scorecard(board)
    await board.page(period="2026-01", min_version=last)
    await caught_up(runtime)

    live = await dump(runtime)
    assert all(live.values()), {t: len(r) for t, r in live.items()}  # something in every table
    changes = " ".join(live["scorecard.kpi_changes"])
    for change in ("actual_corrected", "went_off_track", "recovered", ",crm,"):
        assert change in changes
    read_live = await readings(board)
    async with runtime.engine.begin() as conn:  # damage the read models first
        await conn.execute(text("UPDATE scorecard.kpis SET name = 'wrong'"))
        await conn.execute(text("DELETE FROM scorecard.benefit_balance"))
        await conn.execute(text("DELETE FROM scorecard.kpi_changes WHERE change = 'recovered'"))

    reports = await asyncio.gather(
        *(runtime.runners[p].rebuild(progress=False, wait=15) for p in PROJECTIONS)
    )

    async with runtime.engine.connect() as conn:
        events = (await conn.execute(text("SELECT count(*) FROM scorecard.events"))).scalar()
    assert [r.events for r in reports] == [events]
    rebuilt = await dump(runtime)
    for table in live:
        assert rebuilt[table] == live[table], table
    assert await readings(board) == read_live


async def test_events_stored_at_an_old_version_are_read_upcast_through_a_rebuild(
    services: Services,
) -> None:
    """v1 scorecard events named who did it in their payload; v2 leaves that to the
    envelope. Events stored at v1 before the change are upcast on the way into the board, on
    a rebuild as on the live path: the KPI's history still says who set the target."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from concord.events import CloudEvent
    from scorecard.domain.events import KpiDefined, KpiTargetSet, ScorecardOpened
    from scorecard.domain.rules import StatusThresholds

    runtime = services.scorecard_runtime
    alliance_id, kpi_id = uuid4(), uuid4()
    stream = f"scorecard-{alliance_id}"
    at = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
    kpi = {"kpi_id": kpi_id, "owner_org": "acme", "visibility": "shared"}
    v2_events: list[tuple[Any, dict[str, str]]] = [
        (
            ScorecardOpened(
                alliance_id=alliance_id,
                partners=["acme", "globex"],
                currency="EUR",
                thresholds=StatusThresholds(),
            ),
            {"opened_by_org": "acme", "opened_by": "alice"},
        ),
        (
            KpiDefined(
                **kpi,
                name="Joint revenue",
                description=None,
                dimension="commercial",
                kind="lagging",
                unit="EUR",
                currency="EUR",
                good_direction="higher",
                cadence="month",
                headline=False,
                feed=None,
            ),
            {"defined_by_org": "acme", "defined_by": "alice"},
        ),
        (
            KpiTargetSet(**kpi, period="2026-01", target="100", previous_target=None),
            {"set_by_org": "globex", "set_by": "gina"},
        ),
    ]
    stored = [
        CloudEvent(
            id=uuid4(),
            source="/concord/scorecard",
            type=runtime.registry.type_of(event).replace(".v2", ".v1"),
            subject=stream,
            time=at,
            data={**event.model_dump(mode="json"), **who},  # as v1 wrote it
            allianceid=str(alliance_id),
            streamversion=version,
        )
        for version, (event, who) in enumerate(v2_events, start=1)
    ]
    async with runtime.engine.begin() as conn:
        await runtime.store.append(conn, stream, 0, stored)
    await runtime.events_committed()
    await caught_up(runtime)

    changes = text(
        "SELECT change, new_value, by_org, by_sub FROM scorecard.kpi_changes WHERE kpi_id = :k"
    )

    async def history() -> list[tuple[Any, ...]]:
        async with runtime.engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(changes, {"k": kpi_id})]

    live = await history()
    assert [(c, str(v), org, sub) for c, v, org, sub in live] == [
        ("target_set", "100", "globex", "gina")
    ]
    await runtime.runners["scorecard_board"].rebuild(progress=False)
    assert await history() == live
