"""Messages published by hand on governance's subjects (by someone holding a NATS login that
may: an operator's, a leaked one) do not get into scorecard's read models: a stranger made a
partner far ahead in version is parked and the alliance's real events still apply; a message
that does not even decode is parked, projections go on for alliances created afterwards, and
an operator sees it, replays or drops it through `/ops`."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
from prometheus_client import REGISTRY as METRICS

from concord.events import CloudEvent
from concord.membership import CHARTER, PartnerAdded, PartnerOrganisation, charter_stream
from tests.conftest import Stack, auth, charter, nats_as
from tests.integration.meters import eventually
from tests.integration.scorecard.conftest import STRANGER, known_to

ADDED = "concord.governance.alliance.partner_added.v2"
OPERATOR = auth(roles=("operator",))


async def by_hand(stack: Stack, data: bytes, subject: str = ADDED) -> int:
    nc = await nats_as(stack)  # admin: allowed to publish anywhere
    try:
        headers = {"Nats-Msg-Id": str(uuid4())}
        ack = await nc.jetstream().publish(subject, data, headers=headers)
        return int(ack.seq)
    finally:
        await nc.close()


def partner_added(alliance: dict[str, Any], org: str, version: int) -> CloudEvent:
    """Governance's `PartnerAdded` for `alliance`, at `version` of its stream."""
    return CHARTER.envelope(
        PartnerAdded(partner=PartnerOrganisation(org_id=org, name=org.title())),
        stream_id=charter_stream(alliance["id"]),
        stream_version=version,
        alliance_id=alliance["id"],
    )


async def create(governance: httpx.AsyncClient, **named: Any) -> dict[str, Any]:
    created = await governance.post("/alliances", json=charter(**named), headers=auth())
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def test_a_stranger_added_at_version_999_is_parked_and_real_events_still_apply(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient, stack: Stack
) -> None:
    alliance = await create(governance)
    await known_to(scorecard, alliance)
    forged = partner_added(alliance, STRANGER, 999)
    sequence = await by_hand(stack, forged.to_json())

    added = await governance.post(
        f"/alliances/{alliance['id']}/partners",
        json={"org_id": "umbrella", "name": "Umbrella"},
        headers=auth(),
    )
    assert added.status_code == 200, added.text
    await known_to(scorecard, added.json())  # the real version 2 applied
    base = f"/alliances/{alliance['id']}"
    read = (await scorecard.get(base, headers=auth("umbrella"))).json()
    assert [p["org_id"] for p in read["partners"]] == ["acme", "globex", "umbrella"]
    assert read["version"] == 2
    assert (await scorecard.get(base, headers=auth(STRANGER))).status_code == 404

    parked = (await scorecard.get("/ops/parked", headers=OPERATOR)).json()["messages"]
    assert [(m["projection"], m["sequence"], m["reason"]) for m in parked] == [
        ("alliances", sequence, "ahead")
    ]


async def test_a_message_that_does_not_decode_is_parked_and_an_operator_drops_it(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient, stack: Stack
) -> None:
    labels = {"service": "scorecard", "projection": "alliances", "reason": "unreadable"}
    before = METRICS.get_sample_value("concord_projection_parked_total", labels) or 0
    sequence = await by_hand(stack, b"\x00 this is not an event")

    for name in ("After the garbage", "And another"):
        await known_to(scorecard, await create(governance, name=name))

    parked = (await scorecard.get("/ops/parked", headers=OPERATOR)).json()
    [message] = parked["messages"]
    assert (message["sequence"], message["reason"], message["subject"]) == (
        sequence,
        "unreadable",
        ADDED,
    )
    assert parked["stopped"] == []
    # The reaction that follows the same subject parks it too, at once, and goes on.
    reactions = (await scorecard.get("/ops/parked", headers=OPERATOR)).json()["reactions"]
    assert [(r["reaction"], r["sequence"], r["attempts"]) for r in reactions] == [
        ("partner_joins_balance", sequence, 1)
    ]
    assert METRICS.get_sample_value("concord_projection_parked_total", labels) == before + 1
    gauge = {"service": "scorecard", "kind": "projection"}
    assert METRICS.get_sample_value("concord_parked_work", gauge) == 1
    assert (await scorecard.get("/ops/parked", headers=auth())).status_code == 403

    path = f"/ops/parked/projections/alliances/{sequence}"
    replayed = await scorecard.post(f"{path}/replay", headers=OPERATOR)
    assert replayed.status_code == 409, replayed.text
    assert "unreadable" in replayed.json()["detail"]
    assert (await scorecard.delete(path, headers=auth())).status_code == 403
    dropped = await scorecard.delete(path, headers=OPERATOR)
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["outcome"] == "dropped"
    assert (await scorecard.get("/ops/parked", headers=OPERATOR)).json()["messages"] == []
    assert METRICS.get_sample_value("concord_parked_work", gauge) == 0
    assert (await scorecard.delete(path, headers=OPERATOR)).status_code == 404


async def test_an_event_held_behind_a_gap_applies_as_soon_as_the_gap_is_filled(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient, stack: Stack
) -> None:
    """As after a relay's failed publish, which stores version k+1 before k (ADR 0002)."""
    alliance = await create(governance)
    await known_to(scorecard, alliance)
    ahead = partner_added(alliance, "hooli", 3)
    sequence = await by_hand(stack, ahead.to_json())
    path = f"/ops/parked/projections/alliances/{sequence}"
    still = await scorecard.post(f"{path}/replay", headers=OPERATOR)
    assert still.status_code == 409 and "ahead" in still.json()["detail"]

    added = await governance.post(
        f"/alliances/{alliance['id']}/partners",
        json={"org_id": "umbrella", "name": "Umbrella"},
        headers=auth(),
    )
    assert added.status_code == 200, added.text
    read = await scorecard.get(
        f"/alliances/{alliance['id']}", params={"min_version": 3}, headers=auth("hooli")
    )
    assert read.status_code == 200, read.text
    assert [p["org_id"] for p in read.json()["partners"]] == ["acme", "globex", "umbrella", "hooli"]
    assert (await scorecard.get("/ops/parked", headers=OPERATOR)).json()["messages"] == []
    gauge = {"service": "scorecard", "kind": "projection"}
    assert METRICS.get_sample_value("concord_parked_work", gauge) == 0
    assert (await scorecard.post(f"{path}/replay", headers=OPERATOR)).status_code == 404


async def test_an_operator_replays_an_event_once_the_code_reads_it(
    governance: httpx.AsyncClient,
    scorecard: httpx.AsyncClient,
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An event of a schema version this code has no upcaster for is parked (its alliance
    waits); once a release brings the upcaster, a replay applies it."""
    alliance = await create(governance)
    await known_to(scorecard, alliance)
    old = partner_added(alliance, "hooli", 2).model_copy(
        update={"type": ADDED.replace(".v2", ".v0")}
    )
    sequence = await by_hand(stack, old.to_json(), subject=old.type)
    parked = await eventually(lambda: _parked(scorecard))
    assert [(m["sequence"], m["reason"]) for m in parked] == [(sequence, "invalid")]
    assert "no upcaster" in parked[0]["error"]

    monkeypatch.setattr(CHARTER, "_upcasters", dict(CHARTER._upcasters))
    CHARTER.upcaster(PartnerAdded, 0)(lambda data: data)  # the release that reads v0
    path = f"/ops/parked/projections/alliances/{sequence}"
    replayed = await scorecard.post(f"{path}/replay", headers=OPERATOR)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["outcome"] == "applied"
    read = await scorecard.get(f"/alliances/{alliance['id']}", headers=auth("hooli"))
    assert read.status_code == 200 and read.json()["version"] == 2
    assert await _parked(scorecard) == []


async def _parked(scorecard: httpx.AsyncClient) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await scorecard.get("/ops/parked", headers=OPERATOR)).json()[
        "messages"
    ]
    return messages
