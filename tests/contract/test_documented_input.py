"""What the OpenAPI document says a request may hold is exactly what the service accepts:
text is judged by one documented pattern, and rules JSON Schema can state are stated."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.conftest import auth, charter
from tests.contract.conftest import Counter, assert_problem
from tests.integration.scorecard.conftest import open_board

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


# --- the scorecard: decimals, thresholds and rules across fields --------------------------


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


# Each spelled as a JSON number and as a string, around each bound as it is once rounded to 4
# places (half-even): 0.99995 rounds to 1, 1.00005 to 1, 0.00005 to 0.
THRESHOLD_VALUES = [
    ("flat_band", value)
    for value in ("0", "0.5", "0.99994999", "0.99995", "1", "9.999999999999998", "4.77e307")
] + [
    ("imbalance_threshold", value)
    for value in ("0", "0.00005", "0.000051", "0.3", "1", "1.00005", "1.000051", "-0.1")
]


@pytest.mark.parametrize(("name", "value"), THRESHOLD_VALUES)
@pytest.mark.parametrize("spelled", ["number", "string"])
async def test_a_threshold_is_accepted_exactly_when_the_document_allows_it(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient, name: str, value: str, spelled: str
) -> None:
    """flat_band is below 1 and imbalance_threshold above 0 and at most 1, once rounded: the
    document's bounds (and its pattern for strings) say so of the value as sent."""
    base = (await open_board(governance, scorecard)).base
    document = (await scorecard.get("/openapi.json")).json()
    documented = jsonschema_rs.validator_for(
        _schemas(document)["StatusThresholds-Input"]["properties"][name]
    )
    sent: Any = float(value) if spelled == "number" else value
    changed = await scorecard.post(f"{base}/thresholds", json={name: sent}, headers=auth())
    assert changed.status_code == (200 if documented.is_valid(sent) else 422), changed.text


KPI_VALUES = [
    "9999999999999.9999",
    "9999999999999.99994999",
    "9999999999999.99995",
    "-9999999999999.99995",
]


@pytest.mark.parametrize("value", KPI_VALUES)
async def test_a_kpi_value_is_accepted_exactly_when_the_document_allows_it(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient, value: str
) -> None:
    """A string that rounds past 13 digits before the point is outside the document's pattern."""
    board = await open_board(governance, scorecard)
    document = (await scorecard.get("/openapi.json")).json()
    target = _schemas(document)["KpiTarget"]["properties"]["target"]
    revenue = await board.kpi()
    answer = await board.post(
        f"/kpis/{revenue['id']}/targets", {"period": "2026-01", "target": value}
    )
    valid = jsonschema_rs.validator_for(target).is_valid(value)
    assert answer.status_code == (200 if valid else 422), answer.text


async def test_the_scorecard_document_states_its_rules_across_fields(
    scorecard: httpx.AsyncClient,
) -> None:
    schemas = _schemas((await scorecard.get("/openapi.json")).json())
    assert schemas["ObjectiveDefinition"]["properties"]["kpi_ids"]["uniqueItems"] is True
    assert "a done initiative is 100 % complete" in schemas["InitiativeProgress"]["description"]
    described = " ".join(schemas["KpiDefinition"]["description"].split())
    assert "needs the `currency` its CRM reports in" in described
    assert "has no `currency`" in described
