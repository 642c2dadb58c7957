"""Idempotency-Key on POST: a frontend that retries after a timeout (or double-submits) gets
the first answer again, and the alliance exists once."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import auth, charter
from tests.contract.conftest import Counter, assert_problem, create_alliance, directory


def _keyed(key: str, **kwargs: str) -> dict[str, str]:
    return {**auth(**kwargs), "Idempotency-Key": key}


async def test_a_retried_charter_creates_the_alliance_once_and_replays_the_answer(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    first = await governance.post("/alliances", json=charter(), headers=_keyed("charter-1"))
    again = await governance.post("/alliances", json=charter(), headers=_keyed("charter-1"))
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["location"] == first.headers["location"]
    assert await events_committed() == 1
    assert [item["id"] for item in await directory(governance, 1)] == [first.json()["id"]]


async def test_a_key_reused_for_a_different_charter_is_refused(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    first = await governance.post("/alliances", json=charter(), headers=_keyed("charter-1"))
    assert first.status_code == 201, first.text
    other = await governance.post(
        "/alliances", json=charter(name="Acme x Initech"), headers=_keyed("charter-1")
    )
    assert assert_problem(other, 422)["type"] == "/problems/idempotency-key-reused"
    assert await events_committed() == 1


async def test_a_double_submitted_charter_creates_one_alliance(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    both = await asyncio.gather(
        *(
            governance.post("/alliances", json=charter(), headers=_keyed("double-click"))
            for _ in range(2)
        )
    )
    assert [r.status_code for r in both] == [201, 201], [r.text for r in both]
    assert both[0].json()["id"] == both[1].json()["id"]
    assert sorted(r.headers.get("idempotent-replayed", "") for r in both) == ["", "true"]
    assert await events_committed() == 1
    assert len(await directory(governance, 1)) == 1


async def test_a_retried_change_is_applied_once(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    alliance = await create_alliance(governance)
    expectation = {"statement": "We share bad news early"}
    path = f"/alliances/{alliance['id']}/relational-expectations"
    first = await governance.post(path, json=expectation, headers=_keyed("norm-1"))
    again = await governance.post(path, json=expectation, headers=_keyed("norm-1"))
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["version"] == 2
    assert await events_committed() == 2


async def test_the_same_key_from_another_person_is_their_own_request(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    """Keys are scoped to the caller, so two people who pick the same key do not collide."""
    alice = await governance.post("/alliances", json=charter(), headers=_keyed("k", sub="alice"))
    bob = await governance.post("/alliances", json=charter(), headers=_keyed("k", sub="bob"))
    assert alice.status_code == bob.status_code == 201
    assert alice.json()["id"] != bob.json()["id"]
    assert "idempotent-replayed" not in bob.headers
    assert await events_committed() == 2


async def test_a_refused_charter_does_not_use_up_its_key(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    """Nothing about a refused command is kept, its key included: the corrected retry works."""
    refused = await governance.post(
        "/alliances", json=charter("globex", "initech"), headers=_keyed("charter-1")
    )
    assert_problem(refused, 422)
    fixed = await governance.post("/alliances", json=charter(), headers=_keyed("charter-1"))
    assert fixed.status_code == 201, fixed.text
    assert await events_committed() == 1


async def test_an_unusable_key_is_a_bad_request(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    sent = await governance.post("/alliances", json=charter(), headers=_keyed("k" * 256))
    assert_problem(sent, 400)
    assert await events_committed() == 0
