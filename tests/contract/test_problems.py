"""Bad input is answered with a problem (RFC 9457), never a 500, and writes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from concord.settings import ServiceSettings
from tests.conftest import auth, charter
from tests.contract.conftest import Counter, assert_problem, create_alliance, version_of

UNKNOWN_ALLIANCE = "7f1d0c3e-3b7e-4a53-9d2a-1b1f0b1c2d3e"
MAX_BODY_BYTES = ServiceSettings.model_fields["max_body_bytes"].default  # the fixture keeps it


def _charter(**changes: Any) -> dict[str, Any]:
    body = charter()
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


async def test_a_charter_that_is_not_json_is_a_bad_request(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    sent = await governance.post(
        "/alliances",
        content=b'{"name": "Acme x Globex", "goals": [',
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert_problem(sent, 400)
    assert await events_committed() == 0


@pytest.mark.parametrize(
    ("charter_sent", "location"),
    [
        pytest.param(_charter(goals="Grow joint revenue"), "body.goals", id="goals-not-a-list"),
        pytest.param(_charter(name=42), "body.name", id="name-not-text"),
        pytest.param(_charter(purpose=None), "body.purpose", id="purpose-missing"),
        pytest.param(_charter(name="   "), "body.name", id="name-blank"),
        pytest.param(_charter(goals=["Only one goal"]), "body.goals", id="too-few-goals"),
        pytest.param(_charter(goals=["G1", "G2", "G3", "G4"]), "body.goals", id="too-many-goals"),
        pytest.param(_charter(goals=["Grow", "grow"]), "body", id="same-goal-twice"),
        pytest.param(charter("acme", "globex", "acme"), "body", id="same-partner-twice"),
        pytest.param(
            _charter(
                partners=[{"org_id": "Not An Org!", "name": "X"}, {"org_id": "acme", "name": "A"}]
            ),
            "body.partners.0.org_id",
            id="partner-id-not-an-org-id",
        ),
        pytest.param(_charter(secret_clause="no"), "body.secret_clause", id="unknown-field"),
    ],
)
async def test_an_invalid_charter_is_refused_field_by_field(
    governance: httpx.AsyncClient,
    events_committed: Counter,
    charter_sent: dict[str, Any],
    location: str,
) -> None:
    sent = await governance.post("/alliances", json=charter_sent, headers=auth())
    problem = assert_problem(sent, 422)
    assert problem["type"] == "/problems/validation-error"
    assert any(error["location"] == location for error in problem["errors"]), problem["errors"]
    assert all(error["message"] for error in problem["errors"])
    assert await events_committed() == 0


async def test_a_charter_without_the_callers_organisation_breaks_a_rule(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    sent = await governance.post(
        "/alliances", json=charter("globex", "initech"), headers=auth("acme")
    )
    problem = assert_problem(sent, 422)
    assert problem["type"] == "/problems/rule-violated"
    assert problem["errors"] == [{"location": "partners", "message": problem["detail"]}]
    assert await events_committed() == 0


@pytest.fixture
async def alliance(governance: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    yield await create_alliance(governance)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("partners", {"org_id": "initech"}),
        ("partners", {"org_id": "globex", "name": "Globex again"}),  # a rule, not the schema
        ("executive-sponsors", {"org_id": "umbrella", "name": "Albert Wesker"}),  # not a partner
        ("relational-expectations", {"statement": ""}),
        ("agreement-versions", {"summary": "v1", "text": "How we work", "effective_from": "soon"}),
    ],
)
async def test_an_invalid_change_to_an_alliance_leaves_it_as_it_was(
    governance: httpx.AsyncClient,
    alliance: dict[str, Any],
    events_committed: Counter,
    path: str,
    body: dict[str, Any],
) -> None:
    sent = await governance.post(f"/alliances/{alliance['id']}/{path}", json=body, headers=auth())
    problem = assert_problem(sent, 422)
    assert problem["errors"]
    assert await version_of(governance, alliance["id"]) == 1
    assert await events_committed() == 1


async def test_an_unknown_alliance_is_not_found_to_read_or_change(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    assert_problem(await governance.get(f"/alliances/{UNKNOWN_ALLIANCE}", headers=auth()), 404)
    changed = await governance.post(
        f"/alliances/{UNKNOWN_ALLIANCE}/partners",
        json={"org_id": "initech", "name": "Initech"},
        headers=auth(),
    )
    assert_problem(changed, 404)
    assert await events_committed() == 0


async def test_an_alliance_id_that_is_not_a_uuid_is_invalid_input(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    problem = assert_problem(await governance.get("/alliances/acme-globex", headers=auth()), 422)
    assert problem["errors"][0]["location"] == "path.alliance_id"
    changed = await governance.post(
        "/alliances/acme-globex/partners",
        json={"org_id": "initech", "name": "Initech"},
        headers=auth(),
    )
    assert_problem(changed, 422)
    assert await events_committed() == 0


async def test_an_unknown_route_and_an_unsupported_method_are_problems_too(
    governance: httpx.AsyncClient,
) -> None:
    assert_problem(await governance.get("/partnerships", headers=auth()), 404)
    assert_problem(await governance.delete(f"/alliances/{UNKNOWN_ALLIANCE}", headers=auth()), 405)


async def test_an_unsupported_method_lists_every_method_the_path_serves(
    governance: httpx.AsyncClient,
) -> None:
    """/alliances has a GET route and a POST route; Allow must name both (RFC 9110)."""
    refused = await governance.put("/alliances", json=charter(), headers=auth())
    assert_problem(refused, 405)
    assert set(refused.headers["allow"].split(", ")) >= {"GET", "POST"}


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("", _charter(name="Acme\u0000Globex"), "body.name"),
        ("/partners", {"org_id": "initech", "name": "Ini\u0000tech"}, "body.name"),
    ],
)
async def test_text_with_a_nul_character_is_invalid_input_not_a_server_error(
    governance: httpx.AsyncClient,
    events_committed: Counter,
    path: str,
    body: dict[str, Any],
    location: str,
) -> None:
    """PostgreSQL cannot store U+0000; the caller hears which field held one."""
    base = f"/alliances/{(await create_alliance(governance))['id']}" if path else "/alliances"
    sent = await governance.post(f"{base}{path}", json=body, headers=auth())
    problem = assert_problem(sent, 422)
    assert [error["location"] for error in problem["errors"]] == [location]
    assert await events_committed() == (1 if path else 0)


async def _in_chunks(payload: bytes) -> AsyncIterator[bytes]:
    """A body streamed without declaring its size up front."""
    for start in range(0, len(payload), 64 * 1024):
        yield payload[start : start + 64 * 1024]


def _oversize_charter() -> bytes:
    body = charter()
    body["purpose"] = "x" * (MAX_BODY_BYTES + 1)
    return json.dumps(body).encode()


async def test_an_oversize_charter_is_refused_before_it_is_read(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    sent = await governance.post(
        "/alliances",
        content=_oversize_charter(),
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert_problem(sent, 413)
    assert await events_committed() == 0


async def test_an_oversize_charter_sent_in_chunks_is_refused_too(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    """Without a Content-Length, the limit must hold while the body streams in."""
    sent = await governance.post(
        "/alliances",
        content=_in_chunks(_oversize_charter()),
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert "content-length" not in sent.request.headers
    assert_problem(sent, 413)
    assert await events_committed() == 0


async def test_a_lying_content_length_is_refused_while_the_body_streams(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    """A client that declares a small body and sends a large one is held to the limit."""
    sent = await governance.post(
        "/alliances",
        content=_in_chunks(_oversize_charter()),
        headers={**auth(), "Content-Type": "application/json", "Content-Length": "100"},
    )
    assert_problem(sent, 413)
    assert await events_committed() == 0
