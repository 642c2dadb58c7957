"""What the OpenAPI document says a request may hold is exactly what the service accepts:
text is judged by one documented pattern, and rules JSON Schema can state are stated."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.conftest import auth, charter
from tests.contract.conftest import Counter, assert_problem

NAMES = [
    pytest.param("Acme x Globex", id="plain"),
    pytest.param("  Acme x Globex\t", id="trimmed-spaces"),
    pytest.param("\u0085", id="next-line-alone"),  # white space to Unicode, not to ECMAScript
    pytest.param("\u0085Acme\u3000", id="trimmed-next-line-and-ideographic-space"),
    pytest.param("\ufeff", id="byte-order-mark"),  # white space to ECMAScript, not to Unicode
    pytest.param("\x1c", id="file-separator"),  # white space to Python, not to Unicode
    pytest.param("a" * 200, id="200-characters"),
    pytest.param(" " + "a" * 200 + " ", id="200-characters-once-trimmed"),
    pytest.param("a" * 201, id="201-characters"),
    pytest.param("a\x00b", id="nul"),
    pytest.param(" \t ", id="blank"),
]


def _charter_schema(document: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"]["AllianceCharter"]
    return schema


@pytest.mark.parametrize("name", NAMES)
async def test_a_name_is_accepted_exactly_when_the_document_allows_it(
    governance: httpx.AsyncClient, name: str
) -> None:
    """A client checking a name against the document (with an ECMAScript-like validator, as
    OpenAPI tools do) gets the service's answer."""
    document = (await governance.get("/openapi.json")).json()
    documented = jsonschema_rs.validator_for(_charter_schema(document)["properties"]["name"])
    created = await governance.post("/alliances", json={**charter(), "name": name}, headers=auth())
    assert created.status_code == (201 if documented.is_valid(name) else 422), created.text


async def test_the_document_states_that_goals_and_partners_are_distinct(
    governance: httpx.AsyncClient, events_committed: Counter
) -> None:
    document = (await governance.get("/openapi.json")).json()
    properties = _charter_schema(document)["properties"]
    assert properties["goals"]["uniqueItems"] is True
    assert "regardless of case" in properties["goals"]["description"]
    assert properties["partners"]["uniqueItems"] is True
    for goals in (["Grow", "Grow"], ["Grow", "grow"]):
        refused = await governance.post(
            "/alliances", json={**charter(), "goals": goals}, headers=auth()
        )
        assert "goals must be distinct" in str(assert_problem(refused, 422)["errors"])
    assert await events_committed() == 0
