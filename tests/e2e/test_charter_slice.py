"""The first vertical slice: an alliance created in governance is readable from scorecard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import httpx

from governance.app import SERVICE as GOVERNANCE
from governance.settings import GovernanceSettings
from scorecard.app import SERVICE as SCORECARD
from scorecard.settings import ScorecardSettings
from tests.conftest import auth, charter, serve


async def test_alliance_created_in_governance_is_read_from_scorecard(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient
) -> None:
    created = await governance.post("/alliances", json=charter(), headers=auth("acme"))
    assert created.status_code == 201, created.text
    alliance = created.json()
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"/alliances/{alliance['id']}"

    # Immediately, with no sleep: a read of one's own write (its version) waits briefly.
    read = await scorecard.get(
        f"/alliances/{alliance['id']}",
        params={"min_version": alliance["version"]},
        headers=auth("globex", ("viewer",)),
    )
    assert read.status_code == 200, read.text
    known = read.json()
    assert known["name"] == "Acme x Globex"
    assert [p["org_id"] for p in known["partners"]] == ["acme", "globex"]
    assert known["version"] == 1


async def test_later_charter_changes_reach_scorecard_with_min_version(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient
) -> None:
    alliance = (await governance.post("/alliances", json=charter(), headers=auth())).json()
    base = f"/alliances/{alliance['id']}"
    added = await governance.post(
        f"{base}/partners", json={"org_id": "initech", "name": "Initech"}, headers=auth()
    )
    assert added.status_code == 200, added.text
    sponsor = await governance.post(
        f"{base}/executive-sponsors",
        json={"org_id": "globex", "name": "Hank Scorpio", "title": "CEO"},
        headers=auth(),
    )
    version = int(sponsor.headers["etag"].strip('"'))
    assert version == 3

    read = await scorecard.get(
        base, params={"min_version": version}, headers=auth("initech", ("viewer",))
    )
    assert read.status_code == 200, read.text
    known = read.json()
    assert known["version"] == 3
    assert [p["org_id"] for p in known["partners"]] == ["acme", "globex", "initech"]
    assert known["executive_sponsors"] == [
        {"org_id": "globex", "name": "Hank Scorpio", "title": "CEO"}
    ]


async def test_unknown_alliance_in_scorecard_is_a_problem(
    scorecard: httpx.AsyncClient,
) -> None:
    read = await scorecard.get(
        "/alliances/7f1d0c3e-3b7e-4a53-9d2a-1b1f0b1c2d3e", headers=auth("acme")
    )
    assert read.status_code == 404
    assert read.headers["content-type"] == "application/problem+json"
    assert "No such alliance is known here" in read.json()["detail"]


async def test_stranger_organisation_sees_nothing_in_either_service(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient
) -> None:
    alliance = (await governance.post("/alliances", json=charter(), headers=auth())).json()
    base = f"/alliances/{alliance['id']}"
    # The partner sees it in scorecard first, so the projection has it.
    seen = await scorecard.get(base, params={"min_version": 1}, headers=auth("globex"))
    assert seen.status_code == 200

    stranger = auth("umbrella")
    assert (await governance.get(base, headers=stranger)).status_code == 404
    assert (await scorecard.get(base, headers=stranger)).status_code == 404
    blocked = await governance.post(
        f"{base}/partners", json={"org_id": "umbrella", "name": "Umbrella"}, headers=stranger
    )
    assert blocked.status_code == 404
    listed = await governance.get("/alliances", headers=stranger)
    assert listed.json()["items"] == []
    # And nothing was written by the refused command.
    assert (await governance.get(base, headers=auth())).json()["version"] == 1


@asynccontextmanager
async def charter_read_in_scorecard(
    settings: Callable[..., Any], window: float
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """Both services, scorecard with this read-your-writes window, and an alliance created
    in governance that scorecard has read (asked right after the write, it waited)."""
    governance_app = GOVERNANCE.app(settings(GovernanceSettings))
    scorecard_app = SCORECARD.app(settings(ScorecardSettings, read_your_writes_wait=window))
    async with serve(governance_app) as governance, serve(scorecard_app) as scorecard:
        alliance = (await governance.post("/alliances", json=charter(), headers=auth())).json()
        base = f"/alliances/{alliance['id']}"
        assert (await scorecard.get(base, params={"min_version": 1}, headers=auth())).is_success
        yield scorecard, base


async def test_an_unknown_alliance_or_a_stranger_gets_its_404_at_once(
    settings: Callable[..., Any],
) -> None:
    """Only a caller that asks to read its own write waits for the projection: a stranger's
    or a mistyped id's 404 does not wait out the read-your-writes window (which here is
    long enough that waiting would show)."""
    window = 30.0
    async with charter_read_in_scorecard(settings, window) as (scorecard, base):
        started = time.monotonic()
        answers = await asyncio.gather(
            *(scorecard.get(f"/alliances/{uuid4()}", headers=auth()) for _ in range(20)),
            *(scorecard.get(base, headers=auth("initech")) for _ in range(20)),
            *(scorecard.get(f"{base}/scorecard", headers=auth("initech")) for _ in range(20)),
        )
        elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [404] * 60
    assert elapsed < window / 3, "a 404 waited for the read-your-writes window"


async def test_min_version_still_waits_for_a_version_not_yet_projected(
    settings: Callable[..., Any],
) -> None:
    window = 0.5
    async with charter_read_in_scorecard(settings, window) as (scorecard, base):
        started = time.monotonic()
        later = await scorecard.get(base, params={"min_version": 2}, headers=auth())
        waited = time.monotonic() - started
    assert later.status_code == 404
    assert "not caught up" in later.json()["detail"]
    assert waited >= window  # it did wait, for as long as it promised, then said so
