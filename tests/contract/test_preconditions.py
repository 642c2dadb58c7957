"""ETag / If-Match: a manager who changes the alliance as they last saw it never overwrites
a change they have not seen."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import auth
from tests.contract.conftest import Counter, assert_problem, create_alliance, version_of

NORM = {"statement": "We share bad news early"}


def _if_match(etag: str) -> dict[str, str]:
    return {**auth(), "If-Match": etag}


async def test_reading_an_alliance_gives_its_version_as_etag(governance: httpx.AsyncClient) -> None:
    alliance = await create_alliance(governance)
    read = await governance.get(f"/alliances/{alliance['id']}", headers=auth())
    assert read.headers["etag"] == '"1"'
    assert read.json()["version"] == 1


async def test_a_change_based_on_the_current_version_succeeds_with_the_next_etag(
    governance: httpx.AsyncClient,
) -> None:
    alliance = await create_alliance(governance)
    read = await governance.get(f"/alliances/{alliance['id']}", headers=auth())
    changed = await governance.post(
        f"/alliances/{alliance['id']}/relational-expectations",
        json=NORM,
        headers=_if_match(read.headers["etag"]),
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["relational_expectations"] == [NORM["statement"]]


@pytest.mark.parametrize("stale", ['"0"', '"2"', 'W/"7"'])
async def test_a_change_based_on_another_version_is_refused_and_writes_nothing(
    governance: httpx.AsyncClient, events_committed: Counter, stale: str
) -> None:
    alliance = await create_alliance(governance)
    changed = await governance.post(
        f"/alliances/{alliance['id']}/relational-expectations", json=NORM, headers=_if_match(stale)
    )
    assert_problem(changed, 412)
    assert await version_of(governance, alliance["id"]) == 1
    assert await events_committed() == 1


@pytest.mark.parametrize("malformed", ["1", '"1', '"abc"', 'W/"1" "2"', '"1", "2"', '"1234567890"'])
async def test_an_if_match_that_is_not_an_etag_is_malformed_not_a_failed_precondition(
    governance: httpx.AsyncClient, events_committed: Counter, malformed: str
) -> None:
    """The document's pattern for If-Match makes these malformed: 400, as for any header that
    breaks its schema. 412 says only that a well-formed ETag no longer matches."""
    alliance = await create_alliance(governance)
    changed = await governance.post(
        f"/alliances/{alliance['id']}/relational-expectations",
        json=NORM,
        headers=_if_match(malformed),
    )
    assert_problem(changed, 400)
    assert await events_committed() == 1


async def test_if_match_any_version_changes_whatever_the_version(
    governance: httpx.AsyncClient,
) -> None:
    alliance = await create_alliance(governance)
    changed = await governance.post(
        f"/alliances/{alliance['id']}/relational-expectations", json=NORM, headers=_if_match("*")
    )
    assert changed.status_code == 200, changed.text


async def test_two_managers_changing_the_same_version_at_once_one_wins_one_must_reread(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    alliance = await create_alliance(governance)
    path = f"/alliances/{alliance['id']}/relational-expectations"
    answers = await asyncio.gather(
        governance.post(
            path, json={"statement": "We share bad news early"}, headers=_if_match('"1"')
        ),
        governance.post(
            path, json={"statement": "We decide in the room"}, headers=_if_match('"1"')
        ),
    )
    assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
    lost = next(a for a in answers if a.status_code == 412)
    assert_problem(lost, 412)
    assert await version_of(governance, alliance["id"]) == 2
    assert await events_committed() == 2


async def test_a_change_without_if_match_applies_to_the_latest_version(
    governance: httpx.AsyncClient,
) -> None:
    """If-Match is optional: without it, concurrent changes are retried, not lost."""
    alliance = await create_alliance(governance)
    path = f"/alliances/{alliance['id']}/relational-expectations"
    answers = await asyncio.gather(
        governance.post(path, json={"statement": "We share bad news early"}, headers=auth()),
        governance.post(path, json={"statement": "We decide in the room"}, headers=auth()),
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert sorted(a.headers["etag"] for a in answers) == ['"2"', '"3"']
    assert await version_of(governance, alliance["id"]) == 3
