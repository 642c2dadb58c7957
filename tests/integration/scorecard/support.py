"""What the scorecard integration test modules share beyond conftest: one running stack per
module (starting and stopping both services around every test would cost about two seconds
a test), and helpers that read the event store and shape command bodies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from nats.js.errors import NotFoundError
from sqlalchemy import text

from concord.bus import stream_name
from concord.clock import ManualClock
from concord.events import private_stream
from concord.runtime import ServiceRuntime
from governance.settings import GovernanceSettings
from scorecard.settings import ScorecardSettings
from tests.conftest import (
    BEFORE_THE_PERIODS,
    JWT_SECRET,
    SECRETS_KEYS,
    Stack,
    empty_jetstream,
    fresh_database,
    nats_login,
    serve,
)
from tests.integration.scorecard.conftest import PARTNER_A, Board

PROJECTIONS = ("scorecard_board",)


# --- one running stack for the module ----------------------------------------------------------


@dataclass(frozen=True)
class Services:
    governance: httpx.AsyncClient
    scorecard: httpx.AsyncClient
    database_url: str
    scorecard_runtime: ServiceRuntime


@asynccontextmanager
async def running_services(stack: Stack, pool_size: int = 10) -> AsyncIterator[Services]:
    """Governance and scorecard on a fresh database and an empty JetStream, as the session
    fixtures set them up for one test, but kept running for as long as the caller needs.
    The pool is the services' default size (the per-test fixtures use 5): the stranger test
    in test_visibility asks thirty questions at once."""
    from governance.app import create_app as create_governance
    from scorecard.app import create_app as create_scorecard

    async with fresh_database(stack, prefix="m") as database_url:
        values: dict[str, Any] = {
            "database_url": database_url,
            "nats_url": await empty_jetstream(stack),
            "jwt_secret": JWT_SECRET,
            "secrets_keys": SECRETS_KEYS,
            "database_pool_size": pool_size,
            "relay_poll_interval": 0.5,
            "read_your_writes_wait": 1.0,
        }
        scorecard_app = create_scorecard(
            ScorecardSettings(**values, **nats_login("scorecard")),
            clock=ManualClock(BEFORE_THE_PERIODS),
        )
        governance_app = create_governance(GovernanceSettings(**values, **nats_login("governance")))
        async with (
            serve(governance_app) as governance,
            serve(scorecard_app) as scorecard,
        ):
            yield Services(governance, scorecard, database_url, scorecard_app.state.runtime)


# --- helpers ---------------------------------------------------------------------------------


async def stored_events(
    services: Services, alliance_id: str, private_to: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """One scorecard's stream in the event store, in order: (event_type, data). The shared
    stream, or the private one of the organisation `private_to`."""
    stream = f"scorecard-{alliance_id}"
    if private_to is not None:
        stream = private_stream(stream, private_to)
    conn = await asyncpg.connect(services.database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch(
            """SELECT event_type, envelope FROM scorecard.events
               WHERE stream_id = $1 ORDER BY stream_version""",
            stream,
        )
    finally:
        await conn.close()
    return [(row["event_type"], json.loads(row["envelope"])["data"]) for row in rows]


async def caught_up(runtime: ServiceRuntime, timeout: float = 10.0) -> None:
    """Every committed event is on JetStream and every projection has applied and acked it."""
    js = runtime.bus.js
    stream = stream_name("scorecard")
    deadline = time.monotonic() + timeout
    while True:
        async with runtime.engine.connect() as conn:
            committed = (await conn.execute(text("SELECT count(*) FROM scorecard.events"))).scalar()
        try:
            published = (await js.stream_info(stream)).state.messages
            consumers = [
                await js.consumer_info(stream, runtime.runners[p].durable) for p in PROJECTIONS
            ]
        except NotFoundError:  # the runners have not started following yet
            consumers, published = [], -1
        if published == committed and all(
            c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers
        ):
            return
        assert time.monotonic() < deadline, "the projections did not catch up"
        await asyncio.sleep(0.05)


def of_type(events: list[tuple[str, dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    """The payloads of the events called `name`, whatever their schema version."""
    return [data for event_type, data in events if _name(event_type) == name]


def names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [_name(event_type) for event_type, _ in events]


def _name(event_type: str) -> str:
    return event_type.split(".")[3]


def card(page: dict[str, Any], kpi_id: str) -> dict[str, Any]:
    """A KPI's card wherever the page shows it (goals, leading or lagging)."""
    cards = list(page["goals"])
    for section in ("leading", "lagging"):
        for group in page[section].values():
            cards += group
    found = [c for c in cards if c["id"] == kpi_id]
    assert len(found) == 1, f"KPI {kpi_id} is shown {len(found)} times"
    return found[0]


def through(answer: dict[str, Any]) -> str:
    """A command's answer as `min_version`: the shared and the caller's private version, to
    read one's own write on either (the ETag without its quotes)."""
    return f"{answer['version']}.{answer['private_version']}"


def numbers(**values: str | None) -> dict[str, Decimal | None]:
    return {k: None if v is None else Decimal(v) for k, v in values.items()}


async def target(board: Board, kpi_id: str, period: str, value: str) -> dict[str, Any]:
    return await board.ok(f"/kpis/{kpi_id}/targets", {"period": period, "target": value})


async def actual(
    board: Board, kpi_id: str, period: str, value: str, **extra: Any
) -> dict[str, Any]:
    return await board.ok(f"/kpis/{kpi_id}/actuals", {"period": period, "actual": value, **extra})


def initiative(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Co-sell playbook",
        "dimension": "operational",
        "owner_org": PARTNER_A,
        "owner_name": "Alice Martin",
        "leading_indicator": "Sellers trained",
        "due_date": "2026-01-31",
        **overrides,
    }


def progress(completion: int, as_of: str, status: str = "in_progress", **extra: Any) -> dict:
    return {"completion": completion, "status": status, "as_of": as_of, **extra}


def benefit(partner: str, amount: str, period: str, **overrides: Any) -> dict[str, Any]:
    return {
        "partner_org": partner,
        "kind": "revenue",
        "amount": amount,
        "currency": "EUR",
        "period": period,
        "evidence": f"Signed deals of {partner} in {period}",
        **overrides,
    }
