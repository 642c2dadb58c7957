"""Who may do what: a bearer token names the person, their organisation and their roles;
only an alliance manager changes an alliance. Refusals are problems and write nothing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from governance.app import create_app
from governance.settings import GovernanceSettings
from tests.conftest import JWT_SECRET, auth, charter, serve
from tests.contract.conftest import Counter, assert_problem, create_alliance, version_of


def _signed(claims: dict[str, object], secret: str = JWT_SECRET) -> dict[str, str]:
    """A token valid for an hour from now, with these claims (a claim given as None is
    left out)."""
    now = int(time.time())
    claims = {"iat": now, "exp": now + 3600, **claims}
    payload = {name: value for name, value in claims.items() if value is not None}
    return {"Authorization": f"Bearer {jwt.encode(payload, secret, algorithm='HS256')}"}


ALICE = {"sub": "alice", "org": "acme", "roles": ["alliance_manager"]}
YEAR_2500 = int(datetime(2500, 1, 1, tzinfo=UTC).timestamp())
ISSUER = "https://login.example.com/"

UNAUTHENTICATED = [
    pytest.param({}, id="no-token"),
    pytest.param({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, id="not-a-bearer-token"),
    pytest.param({"Authorization": "Bearer not.a.jwt"}, id="garbage-token"),
    pytest.param(_signed(ALICE, secret="someone-elses-secret-of-enough-length"), id="forged"),
    pytest.param(_signed({**ALICE, "exp": int(time.time()) - 60}), id="expired"),
    pytest.param(_signed({"sub": "alice", "roles": ["alliance_manager"]}), id="no-org"),
    pytest.param(_signed({**ALICE, "org": "Not An Org"}), id="org-not-an-org-id"),
    pytest.param(_signed({"org": "acme", "roles": ["alliance_manager"]}), id="no-sub"),
    pytest.param(
        {"Authorization": "Bearer " + jwt.encode({**ALICE, "exp": 2**31}, "", algorithm="none")},
        id="unsigned",
    ),
    # A stolen token must not work for centuries: CONCORD_JWT_MAX_LIFETIME (24 h) bounds
    # exp - iat, so a token without iat cannot show its lifetime.
    pytest.param(_signed({**ALICE, "exp": YEAR_2500}), id="valid-until-2500"),
    pytest.param(_signed({**ALICE, "iat": None}), id="no-iat"),
]


@pytest.mark.parametrize("headers", UNAUTHENTICATED)
async def test_a_caller_without_a_valid_token_is_asked_to_authenticate(
    governance: httpx.AsyncClient, events_committed: Counter, headers: dict[str, str]
) -> None:
    created = await governance.post("/alliances", json=charter(), headers=headers)
    assert_problem(created, 401)
    assert created.headers["www-authenticate"].startswith("Bearer")
    listed = await governance.get("/alliances", headers=headers)
    assert_problem(listed, 401)
    assert listed.headers["www-authenticate"].startswith("Bearer")
    assert await events_committed() == 0


async def test_an_unauthenticated_change_to_an_alliance_leaves_it_as_it_was(
    governance: httpx.AsyncClient,
) -> None:
    alliance = await create_alliance(governance)
    changed = await governance.post(
        f"/alliances/{alliance['id']}/partners",
        json={"org_id": "initech", "name": "Initech"},
        headers=_signed(ALICE, secret="someone-elses-secret-of-enough-length"),
    )
    assert_problem(changed, 401)
    assert await version_of(governance, alliance["id"]) == 1


async def test_a_viewer_may_not_create_an_alliance(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    created = await governance.post("/alliances", json=charter(), headers=auth(roles=("viewer",)))
    assert_problem(created, 403)
    assert await events_committed() == 0


@pytest.mark.parametrize("roles", [("viewer",), ("executive_sponsor", "member"), ()])
async def test_a_partner_without_the_manager_role_reads_but_does_not_change_the_alliance(
    governance: httpx.AsyncClient, events_committed: Counter, roles: tuple[str, ...]
) -> None:
    alliance = await create_alliance(governance)
    partner = auth("globex", roles, sub="gina")
    assert (
        await governance.get(f"/alliances/{alliance['id']}", headers=partner)
    ).status_code == 200
    changed = await governance.post(
        f"/alliances/{alliance['id']}/relational-expectations",
        json={"statement": "We share bad news early"},
        headers=partner,
    )
    assert_problem(changed, 403)
    assert await version_of(governance, alliance["id"]) == 1
    assert await events_committed() == 1


async def test_a_manager_of_another_organisation_cannot_tell_the_alliance_exists(
    governance: httpx.AsyncClient,
) -> None:
    alliance = await create_alliance(governance)
    stranger = auth("umbrella")
    read = await governance.get(f"/alliances/{alliance['id']}", headers=stranger)
    changed = await governance.post(
        f"/alliances/{alliance['id']}/partners",
        json={"org_id": "umbrella", "name": "Umbrella"},
        headers=stranger,
    )
    # The same answer as for an alliance that does not exist.
    assert assert_problem(read, 404)["detail"] == assert_problem(changed, 404)["detail"]
    assert await version_of(governance, alliance["id"]) == 1


@pytest.mark.parametrize("headers", UNAUTHENTICATED)
async def test_scorecard_asks_for_a_valid_token_too(
    scorecard: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    read = await scorecard.get("/alliances/7f1d0c3e-3b7e-4a53-9d2a-1b1f0b1c2d3e", headers=headers)
    assert_problem(read, 401)
    assert read.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_from_a_clock_a_few_seconds_ahead_is_accepted(
    governance: httpx.AsyncClient,
) -> None:
    """Identity providers' clocks drift: CONCORD_JWT_LEEWAY (30 s) allows for it, on iat,
    nbf and exp alike."""
    ahead = int(time.time()) + 5
    issued_ahead = _signed({**ALICE, "iat": ahead, "nbf": ahead, "exp": ahead + 3600})
    assert (await governance.get("/alliances", headers=issued_ahead)).status_code == 200
    just_expired = _signed({**ALICE, "iat": ahead - 3600, "exp": int(time.time()) - 5})
    assert (await governance.get("/alliances", headers=just_expired)).status_code == 200


async def test_a_token_issued_beyond_the_leeway_is_refused(governance: httpx.AsyncClient) -> None:
    ahead = int(time.time()) + 120
    refused = await governance.get("/alliances", headers=_signed({**ALICE, "iat": ahead}))
    assert_problem(refused, 401)


@pytest.fixture
async def governance_with_issuer(settings: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(GovernanceSettings, jwt_issuer=ISSUER, jwt_audience="concord"))
    async with serve(app) as client:
        yield client


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        pytest.param({"iss": ISSUER, "aud": "concord"}, True, id="ours"),
        pytest.param({"iss": ISSUER, "aud": ["crm", "concord"]}, True, id="one-of-ours"),
        pytest.param({"iss": ISSUER}, False, id="no-audience"),
        pytest.param({"iss": ISSUER, "aud": "crm"}, False, id="another-audience"),
        pytest.param({"aud": "concord"}, False, id="no-issuer"),
        pytest.param({"iss": "https://login.example.org/", "aud": "concord"}, False, id="other"),
    ],
)
async def test_a_configured_issuer_and_audience_are_required(
    governance_with_issuer: httpx.AsyncClient, claims: dict[str, object], accepted: bool
) -> None:
    answered = await governance_with_issuer.get("/alliances", headers=_signed({**ALICE, **claims}))
    if accepted:
        assert answered.status_code == 200, answered.text
    else:
        assert_problem(answered, 401)
