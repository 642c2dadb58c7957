"""GET /alliances pages with a cursor: every alliance once, in the order created. A cursor is
a position in that order, and its documented pattern says exactly which strings are one."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import auth
from tests.contract.conftest import assert_problem, create_alliance, directory


async def test_paging_through_the_alliances_lists_each_once_in_the_order_created(
    governance: httpx.AsyncClient,
) -> None:
    created = [(await create_alliance(governance, name=f"Alliance {n}"))["id"] for n in range(5)]
    assert len(await directory(governance, 5)) == 5

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await governance.get("/alliances", params=params, headers=auth())
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    assert pages == 3


async def test_a_partner_lists_only_the_alliances_it_is_in(governance: httpx.AsyncClient) -> None:
    ours = await create_alliance(governance, "acme", "globex")
    await create_alliance(governance, "initech", "umbrella", by="initech")
    listed = await directory(governance, 1, org="globex")
    assert [item["id"] for item in listed] == [ours["id"]]
    assert (await directory(governance, 1, org="initech"))[0]["id"] != ours["id"]


def _old_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


NOT_CURSORS = [
    pytest.param("not-a-cursor!", id="garbage"),
    pytest.param("%%%", id="not-base64"),
    pytest.param(_old_cursor({"created_at": "2026-01-01T00:00:00+00:00", "id": "x"}), id="old"),
    pytest.param("1767225600000000", id="a-time-without-an-id"),
    pytest.param(f"1767225600000000.{'A' * 32}", id="upper-case-id"),
    pytest.param(f"{'9' * 17}.{'a' * 32}", id="beyond-the-year-2286"),
    pytest.param(f"-1.{'a' * 32}", id="before-1970"),
]


@pytest.mark.parametrize("cursor", NOT_CURSORS)
async def test_a_string_that_is_not_a_cursor_is_invalid_input_as_documented(
    governance: httpx.AsyncClient, cursor: str
) -> None:
    documented = _cursor_pattern(await governance.get("/openapi.json"))
    assert not re.fullmatch(documented, cursor)
    listed = await governance.get("/alliances", params={"cursor": cursor}, headers=auth())
    assert assert_problem(listed, 422)["errors"][0]["location"] == "query.cursor"


async def test_any_cursor_the_document_allows_is_a_position_to_page_after(
    governance: httpx.AsyncClient,
) -> None:
    """The document's pattern is the whole truth: a cursor this API never gave out is still a
    position (a time and an id), and paging starts after it."""
    first = await create_alliance(governance, name="First")
    second = await create_alliance(governance, name="Second")
    listed = await directory(governance, 2)
    documented = _cursor_pattern(await governance.get("/openapi.json"))
    start, after_first = "0." + "0" * 32, _position_of(listed[0])
    end = "9" * 16 + "." + "f" * 32
    for cursor, expected in ((start, [first, second]), (after_first, [second]), (end, [])):
        assert re.fullmatch(documented, cursor)
        page = await governance.get("/alliances", params={"cursor": cursor}, headers=auth())
        assert page.status_code == 200, page.text
        assert [item["id"] for item in page.json()["items"]] == [a["id"] for a in expected]


def _cursor_pattern(document: httpx.Response) -> str:
    operation = document.json()["paths"]["/alliances"]["get"]
    (cursor,) = [p for p in operation["parameters"] if p["name"] == "cursor"]
    pattern: str = cursor["schema"]["anyOf"][0]["pattern"]
    return pattern


def _position_of(item: dict[str, object]) -> str:
    """The cursor after this alliance, as the API would write it."""
    created = datetime.fromisoformat(str(item["created_at"]))
    micros = (created - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return f"{micros}.{str(item['id']).replace('-', '')}"
