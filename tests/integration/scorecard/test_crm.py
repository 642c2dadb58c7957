"""CRM ingestion against the real stack: a partner's CRM signs batches of pipeline events with
an integration credential; the scorecard accepts, deduplicates or rejects them item by item and
derives the CRM-fed KPIs' actuals. Outcomes are read through the HTTP API and by counting what
was written to `scorecard.events` and `scorecard.crm_receipts`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from concord.auth import sign
from tests.conftest import auth, charter
from tests.contract.conftest import assert_problem
from tests.integration.scorecard.conftest import (
    PARTNER_A,
    PARTNER_B,
    STRANGER,
    Board,
    crm_of,
    known_to,
)

EVENTS_PATH = "/integrations/crm/events"
MARCH, APRIL = "2026-03", "2026-04"


# --- what was written -----------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    events: int
    pipeline_events: int
    receipts: int
    deliveries: int


Tally = Callable[[], Awaitable[Written]]


@pytest.fixture
def tally(database_url: str) -> Tally:
    """What the scorecard has written, counted straight from its tables."""

    async def count() -> Written:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return Written(
                events=await conn.fetchval("SELECT count(*) FROM scorecard.events"),
                pipeline_events=await conn.fetchval(
                    "SELECT count(*) FROM scorecard.events "
                    "WHERE envelope #>> '{data,crm_event_id}' IS NOT NULL"
                ),
                receipts=await conn.fetchval("SELECT count(*) FROM scorecard.crm_receipts"),
                deliveries=await conn.fetchval("SELECT count(*) FROM scorecard.crm_deliveries"),
            )
        finally:
            await conn.close()

    return count


# --- pipeline items -------------------------------------------------------------------------


def created(
    id: str,
    opportunity: str,
    amount: str | None = "1000.00",
    *,
    currency: str = "EUR",
    at: str = "2026-03-05T09:00:00Z",
) -> dict[str, Any]:
    item = {
        "id": id,
        "type": "opportunity.created",
        "occurred_at": at,
        "opportunity_id": opportunity,
        "account": "Bank of Springfield",
        "amount": amount,
        "currency": currency,
        "stage": "qualified",
        "close_date": "2026-06-30",
    }
    if amount is None:
        del item["amount"]
    return item


def stage_changed(
    id: str, opportunity: str, amount: str | None, *, at: str = "2026-04-02T09:00:00Z"
) -> dict[str, Any]:
    return {
        "id": id,
        "type": "opportunity.stage_changed",
        "occurred_at": at,
        "opportunity_id": opportunity,
        "stage": "negotiation",
        "amount": amount,
        "currency": "EUR",
    }


def won(id: str, opportunity: str, amount: str, close_date: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "opportunity.closed_won",
        "occurred_at": f"{close_date}T17:00:00Z",
        "opportunity_id": opportunity,
        "amount": amount,
        "currency": "EUR",
        "close_date": close_date,
    }


def lost(id: str, opportunity: str, close_date: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "opportunity.closed_lost",
        "occurred_at": f"{close_date}T17:00:00Z",
        "opportunity_id": opportunity,
        "close_date": close_date,
        "reason": "Went with a competitor",
    }


def proposal(id: str, *, at: str = "2026-03-12T10:00:00Z") -> dict[str, Any]:
    return {"id": id, "type": "proposal.submitted", "occurred_at": at, "account": "Springfield"}


def key_account(id: str, *, at: str = "2026-03-20T10:00:00Z") -> dict[str, Any]:
    return {"id": id, "type": "key_account.agreed", "occurred_at": at, "account": "Shelbyville"}


# --- KPIs and reading them back -------------------------------------------------------------

FED: dict[str, dict[str, Any]] = {
    "pipeline_value": {"name": "Joint pipeline", "kind": "leading"},
    "closed_won_revenue": {"name": "Won revenue", "kind": "lagging"},
    "proposals_submitted": {
        "name": "Proposals",
        "kind": "leading",
        "unit": "count",
        "currency": None,
    },
    "key_accounts_agreed": {
        "name": "Key accounts",
        "kind": "lagging",
        "unit": "count",
        "currency": None,
    },
}


async def fed_kpi(board: Board, feed: str) -> dict[str, Any]:
    return await board.kpi(PARTNER_A, feed=feed, **FED[feed])


async def fed_kpis(board: Board, *feeds: str) -> dict[str, dict[str, Any]]:
    return {feed: await fed_kpi(board, feed) for feed in feeds or FED}


def cards(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = list(page["goals"])
    for group in ("leading", "lagging"):
        for dimension in page[group].values():
            found += dimension
    return {card["id"]: card for card in found}


async def actuals(
    board: Board, kpis: dict[str, dict[str, Any]], *, period: str = MARCH, min_version: int = 0
) -> dict[str, Decimal | None]:
    """Each KPI's actual on the page for the period, by its feed."""
    page = await board.page(period=period, min_version=min_version)
    on_page = cards(page)
    return {
        feed: None
        if on_page[kpi["id"]]["actual"] is None
        else Decimal(on_page[kpi["id"]]["actual"])
        for feed, kpi in kpis.items()
    }


def report_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    statuses = [r["status"] for r in report["results"]]
    assert report["received"] == len(report["results"])
    assert report["accepted"] == statuses.count("accepted")
    assert report["duplicates"] == statuses.count("duplicate")
    assert report["rejected"] == statuses.count("rejected")
    assert report["received"] == report["accepted"] + report["duplicates"] + report["rejected"]
    assert [r["index"] for r in report["results"]] == list(range(report["received"]))
    return report


def batch(*items: Any) -> bytes:
    return json.dumps({"events": list(items)}).encode()


GOOD_BATCH = (
    created("c-1", "opp-1", "100000.00", at="2026-03-05T09:00:00Z"),
    created("c-2", "opp-2", "50000.00", at="2026-03-06T09:00:00Z"),
    # The amount changes in April: the difference counts in March, when opp-1 was created.
    stage_changed("s-1", "opp-1", "120000.00", at="2026-04-02T09:00:00Z"),
    won("w-1", "opp-1", "118000.00", "2026-03-28"),
    won("w-2", "opp-2", "50000.00", "2026-03-20"),
    lost("l-2", "opp-2", "2026-03-25"),  # takes opp-2's won amount back out
    proposal("p-1"),
    proposal("p-2", at="2026-03-31T23:30:00-02:00"),  # April 1st in UTC: April's
    key_account("k-1"),
)
GOOD_MARCH = {
    "pipeline_value": Decimal("170000"),  # 100000 + 50000 + (120000 - 100000)
    "closed_won_revenue": Decimal("118000"),  # opp-1 won; opp-2 won then lost
    "proposals_submitted": Decimal("1"),
    "key_accounts_agreed": Decimal("1"),
}


# --- ingestion and the field mapping --------------------------------------------------------


async def test_good_batch_of_every_type_feeds_the_kpis(board: Board, tally: Tally) -> None:
    """Every event type is accepted; the CRM-fed KPIs' actuals follow pipeline.py's mapping."""
    kpis = await fed_kpis(board)
    crm = await crm_of(board)
    before = await tally()

    report = report_of(await crm.send(*GOOD_BATCH))

    assert report["accepted"] == len(GOOD_BATCH)
    assert [r["id"] for r in report["results"]] == [item["id"] for item in GOOD_BATCH]
    assert all(r["detail"] is None and r["errors"] == [] for r in report["results"])
    after = await tally()
    assert after.pipeline_events - before.pipeline_events == len(GOOD_BATCH)
    assert after.receipts - before.receipts == len(GOOD_BATCH)
    # Four KPIs moved in March, one (proposals) in April: an actual recorded for each.
    assert after.events - before.events == len(GOOD_BATCH) + 5

    version = report["version"]
    assert await actuals(board, kpis, min_version=version) == GOOD_MARCH
    assert await actuals(board, kpis, period=APRIL, min_version=version) == {
        "pipeline_value": None,  # the April stage change counted in March
        "closed_won_revenue": None,
        "proposals_submitted": Decimal("1"),
        "key_accounts_agreed": None,
    }

    history = await board.get(f"/kpis/{kpis['pipeline_value']['id']}/history", min_version=version)
    assert history.status_code == 200, history.text
    changes = history.json()["changes"]
    assert [(c["change"], c["period"], c["source"]) for c in changes] == [
        ("actual_recorded", MARCH, "crm")
    ]
    assert Decimal(changes[0]["new_value"]) == Decimal("170000")
    assert changes[0]["by_org"] == PARTNER_A

    # A repeated closed_won replaces the earlier won amount, in the month it now closes.
    report = report_of(await crm.send(won("w-3", "opp-1", "125000.00", "2026-04-03")))
    assert report["accepted"] == 1
    version = report["version"]
    march = await actuals(board, kpis, min_version=version)
    april = await actuals(board, kpis, period=APRIL, min_version=version)
    assert (march["closed_won_revenue"], april["closed_won_revenue"]) == (
        Decimal(0),
        Decimal(125000),
    )
    assert march["pipeline_value"] == GOOD_MARCH["pipeline_value"]


# --- authentication: nothing is read or written unless the signature verifies --------------


async def test_unauthenticated_requests_are_refused_and_write_nothing(
    board: Board, tally: Tally
) -> None:
    """Bad signature, missing headers, unknown/revoked key, stale timestamp: 401, no write."""
    await fed_kpis(board, "proposals_submitted")
    crm = await crm_of(board)
    before = await tally()
    body = batch(proposal("p-1"))
    now = int(time.time())

    wrong_secret = {
        **crm.headers(body, now),
        "Concord-Signature": sign("not-the-secret", str(now), body),
    }
    tampered = crm.headers(body, now)  # signs `body`; another body is sent
    tampered_body = batch(proposal("p-1"), proposal("p-2"))
    for content, headers in ((body, wrong_secret), (tampered_body, tampered)):
        answer = await board.client.post(EVENTS_PATH, content=content, headers=headers)
        problem = assert_problem(answer, 401)
        assert answer.headers["WWW-Authenticate"] == 'Concord-Signature realm="concord"'
        assert "signature" in problem["detail"].lower()
    assert await tally() == before

    signed = crm.headers(body)

    for missing in ("Concord-Credential", "Concord-Timestamp", "Concord-Signature"):
        headers = {k: v for k, v in signed.items() if k != missing}
        answer = await board.client.post(EVENTS_PATH, content=body, headers=headers)
        assert_problem(answer, 401)
        assert answer.headers["WWW-Authenticate"].startswith("Concord-Signature")

    unknown = {**signed, "Concord-Credential": "crm_000000000000000000000000"}
    answer = await board.client.post(EVENTS_PATH, content=body, headers=unknown)
    assert "credential" in assert_problem(answer, 401)["detail"].lower()

    stale = int(time.time()) - 600
    answer = await crm.send(proposal("p-1"), timestamp=stale)
    assert "timestamp" in assert_problem(answer, 401)["detail"].lower()
    future = int(time.time()) + 600
    assert_problem(await crm.send(proposal("p-1"), timestamp=future), 401)
    assert await tally() == before

    path = f"/alliances/{board.alliance_id}/integrations/crm/credentials"
    revoked = await board.client.delete(f"{path}/{crm.key_id}", headers=auth())
    assert revoked.status_code == 204, revoked.text
    answer = await crm.send(proposal("p-1"))
    assert "revoked" in assert_problem(answer, 401)["detail"].lower()
    assert answer.headers["WWW-Authenticate"] == 'Concord-Signature realm="concord"'
    assert await tally() == before

    listed = await board.client.get(path, headers=auth())
    assert [c["revoked_at"] is not None for c in listed.json()] == [True]
    again = await board.client.delete(f"{path}/{crm.key_id}", headers=auth())
    assert again.status_code == 204  # revoking twice changes nothing
    assert_problem(await board.client.delete(f"{path}/crm_nope", headers=auth()), 404)


# --- idempotency by the CRM's event ids -----------------------------------------------------


async def test_sending_a_batch_again(board: Board, tally: Tally) -> None:
    """The same signed request is a 409 replay; freshly signed, its items are all duplicates."""
    kpis = await fed_kpis(board)
    crm = await crm_of(board)
    now = int(time.time())
    body = batch(*GOOD_BATCH)
    headers = crm.headers(body, now)
    first = report_of(await board.client.post(EVENTS_PATH, content=body, headers=headers))
    assert first["accepted"] == len(GOOD_BATCH)
    after_first = await tally()

    replay = await board.client.post(EVENTS_PATH, content=body, headers=headers)
    problem = assert_problem(replay, 409)
    assert problem["type"].endswith("/replayed-delivery")
    assert await tally() == after_first

    again = report_of(await crm.send(*GOOD_BATCH, timestamp=now - 1))
    assert again["duplicates"] == len(GOOD_BATCH)
    assert {r["detail"] for r in again["results"]} == {"Already received"}
    assert again["version"] == first["version"]
    written = await tally()
    assert (written.events, written.receipts) == (after_first.events, after_first.receipts)
    assert await actuals(board, kpis, min_version=again["version"]) == GOOD_MARCH

    changed = {**proposal("p-1"), "account": "Someone else"}
    report = report_of(await crm.send(changed, proposal("p-9"), timestamp=now - 2))
    assert [r["status"] for r in report["results"]] == ["rejected", "accepted"]
    assert report["results"][0]["id"] == "p-1"
    assert "different content" in report["results"][0]["detail"]
    written = await tally()
    assert written.receipts == after_first.receipts + 1
    assert written.pipeline_events == after_first.pipeline_events + 1


async def test_same_id_twice_in_one_batch(board: Board, tally: Tally) -> None:
    """A repeat of an id within a batch is a duplicate; ids are per sending organisation."""
    kpis = await fed_kpis(board, "proposals_submitted")
    crm = await crm_of(board)
    before = await tally()
    report = report_of(await crm.send(proposal("p-1"), proposal("p-2"), proposal("p-1")))
    assert [r["status"] for r in report["results"]] == ["accepted", "accepted", "duplicate"]
    assert report["results"][2]["id"] == "p-1"
    after = await tally()
    assert after.receipts - before.receipts == 2
    assert after.pipeline_events - before.pipeline_events == 2
    assert await actuals(board, kpis, min_version=report["version"]) == {
        "proposals_submitted": Decimal(2)
    }

    # Ids are the sending CRM's own: globex's p-1 is another event, feeding globex's KPIs only.
    theirs = await crm_of(board, PARTNER_B)
    report = report_of(await theirs.send(proposal("p-1"), proposal("p-3")))
    assert report["accepted"] == 2
    assert (await tally()).receipts - before.receipts == 4
    assert await actuals(board, kpis, min_version=report["version"]) == {
        "proposals_submitted": Decimal(2)
    }


# --- one bad item never sinks the others ----------------------------------------------------


async def test_mixed_batch_rejects_bad_items_and_accepts_the_rest(
    board: Board, tally: Tally
) -> None:
    """Bad items are rejected by index with reasons, good ones counted; fixed ones go in later."""
    kpis = await fed_kpis(board, "pipeline_value", "proposals_submitted")
    crm = await crm_of(board)
    before = await tally()
    now = int(time.time())

    mixed: list[Any] = [
        created("c-1", "opp-1", "1000.00"),  # 0 good
        created("c-2", "opp-2", None),  # 1 no amount
        {**proposal("x-3"), "type": "opportunity.deleted"},  # 2 unknown type
        "not an event",  # 3 not an object
        created("c-4", "opp-4", "4000.00", currency="eur"),  # 4 not a currency code
        stage_changed("s-5", "opp-nobody-created", "500.00"),  # 5 unknown opportunity
        created("c-6", "opp-6", "6000.00", currency="USD"),  # 6 the KPI is kept in EUR
        proposal("p-7"),  # 7 good
    ]
    body = batch(*mixed)
    answer = await board.client.post(EVENTS_PATH, content=body, headers=crm.headers(body, now))
    report = report_of(answer)
    results = report["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert (report["received"], report["accepted"], report["rejected"]) == (8, 2, 6)
    assert [r["id"] for r in results] == ["c-1", "c-2", "x-3", None, "c-4", "s-5", "c-6", "p-7"]
    for index in (1, 2, 3, 4):  # not pipeline events at all: schema errors, located
        assert results[index]["detail"]
        assert results[index]["errors"]
        assert all(e["location"].startswith(f"events.{index}") for e in results[index]["errors"])
    assert any(e["location"].endswith(".amount") for e in results[1]["errors"])
    assert any(e["location"].endswith(".currency") for e in results[4]["errors"])
    assert "not known" in results[5]["detail"]
    assert "EUR" in results[6]["detail"]
    assert results[5]["errors"] == results[6]["errors"] == []

    after = await tally()
    assert after.pipeline_events - before.pipeline_events == 2
    assert after.receipts - before.receipts == 2
    assert await actuals(board, kpis, min_version=report["version"]) == {
        "pipeline_value": Decimal(1000),
        "proposals_submitted": Decimal(1),
    }

    # Rejected items were not receipted: the same ids, corrected, are accepted.
    fixed = [
        created("c-2", "opp-2", "2000.00"),
        created("c-4", "opp-4", "4000.00"),
        created("c-6", "opp-6", "6000.00"),
        created("c-5", "opp-nobody-created", "300.00"),
        stage_changed("s-5", "opp-nobody-created", "500.00"),
    ]
    report = report_of(await crm.send(*fixed, timestamp=now - 1))
    assert report["accepted"] == len(fixed)
    assert (await tally()).receipts - before.receipts == 2 + len(fixed)
    assert await actuals(board, kpis, min_version=report["version"]) == {
        "pipeline_value": Decimal(1000 + 2000 + 4000 + 6000 + 500),
        "proposals_submitted": Decimal(1),
    }


async def test_a_body_that_is_not_a_batch_is_refused_whole(board: Board, tally: Tally) -> None:
    """Over 1000 items or none is 422, not JSON is 400, nothing written; 1000 items are read."""
    crm = await crm_of(board)
    before = await tally()

    too_many = batch(*(proposal(f"p-{i}") for i in range(1001)))
    answer = await board.client.post(EVENTS_PATH, content=too_many, headers=crm.headers(too_many))
    problem = assert_problem(answer, 422)
    assert "1000" in problem["detail"]

    for body in (b'{"events": []}', b"[]", b'{"items": [1]}'):
        answer = await board.client.post(EVENTS_PATH, content=body, headers=crm.headers(body))
        assert_problem(answer, 422)

    for body in (b"this is not json", b'{"events": [', b"\xff\xfe"):
        answer = await board.client.post(EVENTS_PATH, content=body, headers=crm.headers(body))
        assert_problem(answer, 400)

    assert await tally() == before

    most = report_of(await crm.send(*(proposal(f"p-{i}") for i in range(1000))))
    assert most["accepted"] == 1000
    assert (await tally()).receipts == before.receipts + 1000


# --- KPIs and the pipeline over time --------------------------------------------------------


async def test_kpi_defined_later_is_backfilled(board: Board, tally: Tally) -> None:
    """A CRM-fed KPI defined after its events arrived starts with their totals as its actual."""
    crm = await crm_of(board)
    report = report_of(
        await crm.send(
            created("c-1", "opp-1", "2500.00"),
            created("c-2", "opp-2", "7500.00", at="2026-04-15T09:00:00Z"),
            proposal("p-1"),
        )
    )
    assert report["accepted"] == 3
    before = await tally()

    kpi = await fed_kpi(board, "pipeline_value")
    after = await tally()
    assert after.events - before.events == 3  # defined, and an actual for March and April
    kpis = {"pipeline_value": kpi}
    assert await actuals(board, kpis, min_version=kpi["version"]) == {
        "pipeline_value": Decimal(2500)
    }
    assert await actuals(board, kpis, period=APRIL, min_version=kpi["version"]) == {
        "pipeline_value": Decimal(7500)
    }
    history = await board.get(f"/kpis/{kpi['id']}/history", min_version=kpi["version"])
    assert {c["source"] for c in history.json()["changes"]} == {"crm"}


async def test_concurrent_batches_count_every_item_once(board: Board, tally: Tally) -> None:
    """Two batches for one alliance at once both succeed and every item counts exactly once."""
    kpis = await fed_kpis(board, "proposals_submitted", "pipeline_value")
    crm = await crm_of(board)
    other = await crm_of(board)
    before = await tally()

    first, second = await asyncio.gather(
        crm.send(*(proposal(f"a-{i}") for i in range(10)), created("c-a", "opp-a", "100.00")),
        other.send(*(proposal(f"b-{i}") for i in range(10)), created("c-b", "opp-b", "200.00")),
    )
    reports = [report_of(first), report_of(second)]
    assert [r["accepted"] for r in reports] == [11, 11]
    assert reports[0]["version"] != reports[1]["version"]
    after = await tally()
    assert after.pipeline_events - before.pipeline_events == 22
    assert after.receipts - before.receipts == 22
    assert await actuals(board, kpis, min_version=max(r["version"] for r in reports)) == {
        "proposals_submitted": Decimal(20),
        "pipeline_value": Decimal(300),
    }


# --- credentials ----------------------------------------------------------------------------


async def test_credentials_are_listed_without_secrets_and_issued_by_managers(
    board: Board,
) -> None:
    """The list shows key ids, never secrets; only a manager of a partner org may issue one."""
    path = f"/alliances/{board.alliance_id}/integrations/crm/credentials"
    first, second = await crm_of(board), await crm_of(board)
    theirs = await crm_of(board, PARTNER_B)

    listed = await board.client.get(path, headers=auth())
    assert listed.status_code == 200, listed.text
    credentials = listed.json()
    assert sorted(c["key_id"] for c in credentials) == sorted([first.key_id, second.key_id])
    assert all("secret" not in c for c in credentials)
    assert first.secret not in listed.text and second.secret not in listed.text
    assert all(c["org_id"] == PARTNER_A and c["revoked_at"] is None for c in credentials)
    listed_b = await board.client.get(path, headers=auth(PARTNER_B))
    assert [c["key_id"] for c in listed_b.json()] == [theirs.key_id]

    viewer = auth(PARTNER_A, ("viewer",), sub="vic")
    assert_problem(await board.client.post(path, headers=viewer), 403)
    assert_problem(await board.client.delete(f"{path}/{first.key_id}", headers=viewer), 403)
    assert_problem(await board.client.post(path, headers=auth(STRANGER)), 404)
    assert_problem(await board.client.get(path, headers=auth(STRANGER)), 404)
    # Another partner cannot revoke acme's credential.
    assert_problem(await board.client.delete(f"{path}/{first.key_id}", headers=auth("globex")), 404)
    listed = await board.client.get(path, headers=auth())
    assert len(listed.json()) == 2


async def test_alliance_without_scorecard_is_404_and_writes_nothing(
    board: Board, governance: httpx.AsyncClient, tally: Tally
) -> None:
    """A batch for an alliance whose scorecard is not open is a 404 and nothing is written."""
    created_alliance = await governance.post(
        "/alliances", json=charter(name="Acme x Globex, unopened"), headers=auth()
    )
    assert created_alliance.status_code == 201, created_alliance.text
    alliance_id = created_alliance.json()["id"]
    await known_to(board.client, created_alliance.json())
    crm = await crm_of(Board(board.client, alliance_id))
    before = await tally()

    answer = await crm.send(proposal("p-1"), created("c-1", "opp-1"))
    assert "scorecard" in assert_problem(answer, 404)["detail"]
    assert await tally() == before


# --- bugs found -----------------------------------------------------------------------------


async def test_replay_with_padded_signature_is_still_a_replay(board: Board, tally: Tally) -> None:
    """A captured signed request re-sent with whitespace after its signature is a replay."""
    await fed_kpis(board, "proposals_submitted")
    crm = await crm_of(board)
    body = batch(proposal("p-1"))
    headers = crm.headers(body)
    report_of(await board.client.post(EVENTS_PATH, content=body, headers=headers))
    before = await tally()

    padded: dict[str, Any] = {
        **headers,
        "Concord-Signature": headers["Concord-Signature"].encode() + b"\xa0",
    }
    replay = await board.client.post(EVENTS_PATH, content=body, headers=padded)
    assert (await tally()).deliveries == before.deliveries
    assert_problem(replay, 409)


async def test_non_ascii_signature_headers_are_401(board: Board, tally: Tally) -> None:
    """A timestamp or signature header with a non-ASCII byte is a 401, not a server error."""
    crm = await crm_of(board)
    body = batch(proposal("p-1"))
    answers: list[tuple[str, object]] = []
    for header, value in (("Concord-Timestamp", b"\xb2"), ("Concord-Signature", b"v1=\xe9")):
        headers: dict[str, Any] = {**crm.headers(body), header: value}
        try:
            answer = await board.client.post(EVENTS_PATH, content=body, headers=headers)
            answers.append((header, answer.status_code))
        except (ValueError, TypeError) as error:  # re-raised by the ASGI transport: a 500
            answers.append((header, f"500 {error!r}"))
    assert answers == [("Concord-Timestamp", 401), ("Concord-Signature", 401)]
    assert (await tally()).deliveries == 0


async def test_repeat_of_a_rejected_item_in_the_same_batch_is_not_a_duplicate(
    board: Board, tally: Tally
) -> None:
    """An id whose earlier occurrence in the batch was rejected is not 'already received'."""
    kpis = await fed_kpis(board, "pipeline_value")
    crm = await crm_of(board)
    before = await tally()
    report = report_of(
        await crm.send(
            stage_changed("s-1", "opp-1", "1500.00"),  # rejected: opp-1 is not created yet
            created("c-1", "opp-1", "1000.00"),
            stage_changed("s-1", "opp-1", "1500.00"),  # now it can be applied
        )
    )
    statuses = [r["status"] for r in report["results"]]
    assert statuses[:2] == ["rejected", "accepted"]
    receipts = (await tally()).receipts - before.receipts
    # Whatever the verdict, it must not claim the id was received when it was not.
    assert not (statuses[2] == "duplicate" and receipts == 1)
    assert await actuals(board, kpis, min_version=report["version"]) == {
        "pipeline_value": Decimal(1500)
    }
