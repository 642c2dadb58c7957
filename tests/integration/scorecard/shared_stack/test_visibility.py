"""Who sees what on a shared scorecard: acme and globex are partners, initech is not.

A partner's private KPI or private benefit is its own: the other partner finds no trace of
it on any route (not even as a refusal that admits it exists), and an organisation outside
the alliance finds nothing at all. Like test_commands, the module shares one running stack
and each test opens an alliance of its own."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from tests.conftest import auth
from tests.contract.conftest import assert_problem
from tests.integration.scorecard.conftest import PARTNER_A, PARTNER_B, STRANGER, Board, crm_of, kpi
from tests.integration.scorecard.support import (
    Services,
    actual,
    benefit,
    card,
    initiative,
    names,
    stored_events,
    target,
    through,
)

PRIVATE_NAME = "Acme gross margin"


def kpi_ids(page: dict[str, Any]) -> list[str]:
    """Every KPI the page shows, in goals, leading and lagging."""
    ids = [c["id"] for c in page["goals"]]
    for section in ("leading", "lagging"):
        for group in page[section].values():
            ids += [c["id"] for c in group]
    return ids


def opportunity(event_id: str, opportunity_id: str, amount: str) -> dict[str, Any]:
    return {
        "type": "opportunity.created",
        "id": event_id,
        "occurred_at": "2026-01-15T10:00:00Z",
        "opportunity_id": opportunity_id,
        "account": "Banco Uno",
        "amount": amount,
        "currency": "EUR",
        "stage": "qualify",
        "close_date": "2026-03-31",
    }


def same_problem(problem: dict[str, Any]) -> dict[str, Any]:
    """What a problem says, without where it was asked (instance) or the request's id."""
    return {k: v for k, v in problem.items() if k not in ("instance", "request_id")}


async def acme_with_secrets(board: Board) -> dict[str, Any]:
    """A scorecard where acme keeps a private headline KPI beside a shared one, an objective
    measured by both, and a private benefit beside shared ones."""
    shared = await board.kpi()
    private = await board.kpi(
        name=PRIVATE_NAME,
        unit="%",
        currency=None,
        visibility="private",
        headline=True,
        dimension="strategic",
    )
    await target(board, private["id"], "2026-01", "40")
    await actual(board, private["id"], "2026-01", "20")  # off track: a KpiWentOffTrack too
    await target(board, shared["id"], "2026-01", "100")
    await actual(board, shared["id"], "2026-01", "99")
    objective = await board.ok(
        "/objectives",
        {
            "name": "Profitable growth",
            "dimension": "commercial",
            "kpi_ids": [shared["id"], private["id"]],
        },
    )
    assert objective["kpi_ids"] == [shared["id"], private["id"]]
    await board.ok("/benefits", benefit(PARTNER_A, "100", "2026-01"))
    await board.ok("/benefits", benefit(PARTNER_B, "100", "2026-01"), PARTNER_B)
    secret = await board.ok(
        "/benefits",
        benefit(PARTNER_A, "4321", "2026-01", visibility="private", evidence="Confidential deal"),
    )
    return {"shared": shared, "private": private, "objective": objective, "benefit": secret}


# --- private items ---------------------------------------------------------------------------


async def test_a_private_kpi_is_absent_for_the_other_partner(board: Board) -> None:
    """Acme's private KPI shows on acme's page, history, export and strategy map, and nowhere
    on globex's: not as a card, not as an id, not by name."""
    made = await acme_with_secrets(board)
    shared, private = made["shared"]["id"], made["private"]["id"]
    version = made["benefit"]["version"]

    mine = await board.page(period="2026-01", min_version=through(made["benefit"]))
    assert kpi_ids(mine) == [private, shared]
    assert card(mine, private)["status"] == "off_track"
    [objective] = mine["strategy_map"]["objectives"]
    assert objective["kpi_ids"] == [shared, private]

    answer = await board.get("", PARTNER_B, period="2026-01", min_version=version)
    assert answer.status_code == 200, answer.text
    theirs = answer.json()
    assert theirs["goals"] == []
    assert kpi_ids(theirs) == [shared]
    [objective] = theirs["strategy_map"]["objectives"]
    assert objective["kpi_ids"] == [shared]
    assert private not in answer.text
    assert PRIVATE_NAME not in answer.text

    history = await board.get(f"/kpis/{private}/history", PARTNER_B)
    ghost = await board.get(f"/kpis/{uuid.uuid4()}/history", PARTNER_B)
    assert same_problem(assert_problem(history, 404)) == same_problem(assert_problem(ghost, 404))
    own = await board.get(f"/kpis/{private}/history")
    assert own.status_code == 200, own.text
    assert [c["change"] for c in own.json()["changes"]] == [
        "target_set",
        "actual_recorded",
        "went_off_track",
    ]

    export = await board.get("/export.csv", PARTNER_B, period="2026-01")
    assert export.status_code == 200, export.text
    assert PRIVATE_NAME not in export.text
    assert "Joint revenue" in export.text
    assert PRIVATE_NAME in (await board.get("/export.csv", period="2026-01")).text

    linked = await board.ok(
        "/strategy-map/links",
        {
            "cause_id": made["objective"]["id"],
            "effect_id": (
                await board.ok("/objectives", {"name": "Share", "dimension": "strategic"})
            )["id"],
        },
        PARTNER_B,
    )
    assert linked["kpi_ids"] == [shared]  # the command's answer hides it as well


async def test_a_private_benefit_stays_with_its_owner(board: Board, services: Services) -> None:
    """Acme's private benefit is in acme's ledger only, and counts in nobody's share: the
    balance of benefits is what the partners share with each other."""
    made = await acme_with_secrets(board)
    secret = made["benefit"]
    # Each reads its own writes: acme its private one too, globex what it may see.
    versions = {PARTNER_A: through(secret), PARTNER_B: secret["version"]}

    theirs = await board.get("/benefits", PARTNER_B, min_version=versions[PARTNER_B])
    assert theirs.status_code == 200, theirs.text
    assert [i["visibility"] for i in theirs.json()["items"]] == ["shared", "shared"]
    assert secret["id"] not in theirs.text
    assert "Confidential deal" not in theirs.text
    mine = (await board.get("/benefits", min_version=versions[PARTNER_A])).json()
    assert [i["id"] for i in mine["items"]][-1] == secret["id"]

    for org in (PARTNER_A, PARTNER_B):
        balance = (await board.page(org, period="2026-01", min_version=versions[org]))[
            "balance_of_benefits"
        ]
        amounts = {
            p["org_id"]: (Decimal(p["amount"]), Decimal(p["share"])) for p in balance["partners"]
        }
        assert amounts == {"acme": (100, Decimal("0.5")), "globex": (100, Decimal("0.5"))}, org
        assert (Decimal(balance["imbalance_index"]), balance["imbalanced"]) == (0, False)
        history = (await board.get("/balance-of-benefits", org)).json()
        [point] = history["points"]
        assert {p["org_id"]: Decimal(p["amount"]) for p in point["partners"]} == {
            "acme": 100,
            "globex": 100,
        }
        export = (await board.get("/export.csv", org, period="2026-01")).text
        assert "4321" not in export

    # 4321 for acme alone is on acme's private scorecard, and tipped nothing
    private = names(await stored_events(services, board.alliance_id, PARTNER_A))
    assert [name for name in private if name.startswith("benefit_")] == ["benefit_recorded"]
    assert names(await stored_events(services, board.alliance_id))[-1] == (
        "benefit_balance_restored"  # globex's 100 beside acme's shared 100
    )


async def test_the_other_partner_cannot_touch_a_private_kpi(board: Board) -> None:
    """Globex may not keep acme's numbers: on a shared KPI it is told so (403); on a private
    one it is told the KPI does not exist (404), as for any KPI that does not. Naming one of
    its own KPIs like acme's private one is fine: globex cannot know the name is taken."""
    made = await acme_with_secrets(board)
    shared, private, ghost = made["shared"]["id"], made["private"]["id"], str(uuid.uuid4())
    numbers = {"period": "2026-02", "target": "1"}

    assert_problem(await board.post(f"/kpis/{shared}/targets", numbers, PARTNER_B), 403)
    for path in ("targets", "actuals"):
        body = numbers if path == "targets" else {"period": "2026-02", "actual": "1"}
        refused = await board.post(f"/kpis/{private}/{path}", body, PARTNER_B)
        unknown = await board.post(f"/kpis/{ghost}/{path}", body, PARTNER_B)
        assert same_problem(assert_problem(refused, 404)) == same_problem(
            assert_problem(unknown, 404)
        )

    measured = await board.post(
        "/objectives", {"name": "Spy", "dimension": "strategic", "kpi_ids": [private]}, PARTNER_B
    )
    nothing = await board.post(
        "/objectives", {"name": "Spy", "dimension": "strategic", "kpi_ids": [ghost]}, PARTNER_B
    )
    refusal = assert_problem(measured, 422)
    assert refusal["detail"].replace(private, "?") == assert_problem(nothing, 422)[
        "detail"
    ].replace(ghost, "?")

    twin = await board.post(
        "/kpis", kpi(PARTNER_B, name=PRIVATE_NAME, visibility="private"), PARTNER_B
    )
    assert twin.status_code == 201, twin.text
    again = await board.post("/kpis", kpi(PARTNER_B, name=PRIVATE_NAME.upper()), PARTNER_B)
    assert assert_problem(again, 422)["errors"][0]["location"] == "name"  # its own is taken
    page = await board.page(PARTNER_B, period="2026-01", min_version=through(twin.json()))
    assert kpi_ids(page) == [shared, twin.json()["id"]]


async def test_a_command_answer_does_not_count_the_other_partners_private_kpis(
    board: Board,
) -> None:
    """Globex sees one KPI on the scorecard; the scorecard's summary must say one, too."""
    made = await acme_with_secrets(board)
    page = await board.page(PARTNER_B, period="2026-01", min_version=made["benefit"]["version"])
    assert len(kpi_ids(page)) == 1

    summary = await board.ok("/thresholds", {"on_track_from": "0.9"}, PARTNER_B)
    assert summary["kpis"] == len(kpi_ids(page))


# --- organisations outside the alliance ------------------------------------------------------


async def test_a_stranger_finds_nothing(board: Board) -> None:
    """Initech is not in the alliance: every scorecard route answers 404, exactly as it does
    for an alliance that does not exist, so the answer gives nothing away."""
    made = await acme_with_secrets(board)
    launched = await board.ok("/initiatives", initiative())
    await board.page(period="2026-01", min_version=launched["version"])
    kpi_id, initiative_id = made["shared"]["id"], launched["id"]
    client = board.client

    def requests(alliance_id: str, org: str) -> list[Any]:
        base = f"/alliances/{alliance_id}"
        headers = auth(org)
        get = [
            base,
            f"{base}/scorecard",
            f"{base}/scorecard/kpis/{kpi_id}/history",
            f"{base}/scorecard/initiatives/{initiative_id}/history",
            f"{base}/scorecard/export.csv",
            f"{base}/scorecard/benefits",
            f"{base}/scorecard/balance-of-benefits",
            f"{base}/integrations/crm/credentials",
        ]
        post = [
            (f"{base}/scorecard", {"currency": "EUR"}),
            (f"{base}/scorecard/thresholds", {"on_track_from": "0.9"}),
            (f"{base}/scorecard/kpis", kpi(org, name="Initech KPI")),
            (f"{base}/scorecard/kpis/{kpi_id}/targets", {"period": "2026-01", "target": "1"}),
            (f"{base}/scorecard/benefits", benefit(org, "10", "2026-01")),
            (f"{base}/scorecard/initiatives", initiative(owner_org=org)),
            (f"{base}/integrations/crm/credentials", None),
        ]
        return [client.get(path, headers=headers) for path in get] + [
            client.post(path, json=body, headers=headers) for path, body in post
        ]

    # Every one waits out the bounded read-your-writes wait, so ask them all at once.
    stranger, nowhere = await asyncio.gather(
        asyncio.gather(*requests(board.alliance_id, STRANGER)),
        asyncio.gather(*requests(str(uuid.uuid4()), PARTNER_A)),
    )
    for seen, unknown in zip(stranger, nowhere, strict=True):
        assert same_problem(assert_problem(seen, 404)) == same_problem(
            assert_problem(unknown, 404)
        ), seen.request.url
        for secret in ("Acme x Globex", "Joint revenue", PARTNER_A, PARTNER_B):
            assert secret not in seen.text, seen.request.url

    page = await board.page(period="2026-01")
    assert page["initiatives"][0]["owner_org"] == PARTNER_A  # nothing the stranger sent landed
    assert [i["partner_org"] for i in (await board.get("/benefits")).json()["items"]] == [
        PARTNER_A,
        PARTNER_B,
        PARTNER_A,
    ]


# --- CRM credentials -------------------------------------------------------------------------


async def test_a_partners_crm_credential_feeds_only_its_own_kpis(board: Board) -> None:
    """Globex's CRM reports globex's pipeline: it cannot move acme's CRM-fed KPI, however it
    names the opportunities, while acme's own CRM does."""
    acme_pipeline = await board.kpi(name="Acme pipeline", feed="pipeline_value")
    globex_crm = await crm_of(board, PARTNER_B)
    sent = await globex_crm.send(
        opportunity("g-1", "opp-1", "5000"), opportunity("g-2", "opp-2", "700")
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 2

    page = await board.page(period="2026-01", min_version=sent.json()["version"])
    shown = card(page, acme_pipeline["id"])
    assert (shown["actual"], shown["status"]) == (None, "no_target")
    history = (await board.get(f"/kpis/{acme_pipeline['id']}/history")).json()
    assert (history["series"], history["changes"]) == ([], [])

    acme_crm = await crm_of(board, PARTNER_A)
    own = await acme_crm.send(opportunity("g-1", "opp-1", "2000"))  # the same ids, acme's CRM
    assert own.json()["accepted"] == 1
    page = await board.page(period="2026-01", min_version=own.json()["version"])
    assert Decimal(card(page, acme_pipeline["id"])["actual"]) == 2000
    [change] = (await board.get(f"/kpis/{acme_pipeline['id']}/history")).json()["changes"]
    assert (change["change"], change["source"], change["by_org"]) == (
        "actual_recorded",
        "crm",
        "acme",
    )

    # Globex's own pipeline KPI starts from what globex's CRM reported, and only that.
    globex_pipeline = await board.kpi(PARTNER_B, name="Globex pipeline", feed="pipeline_value")
    page = await board.page(period="2026-01", min_version=globex_pipeline["version"])
    assert Decimal(card(page, globex_pipeline["id"])["actual"]) == 5700
    assert Decimal(card(page, acme_pipeline["id"])["actual"]) == 2000
