"""GET /alliances pages with an opaque cursor: every alliance once, in the order created."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from concord.http import encode_cursor
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


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not-a-cursor!", id="garbage"),
        pytest.param("%%%", id="not-base64"),
        pytest.param(_cursor([1, 2]), id="json-but-not-an-object"),
        pytest.param(_cursor({"id": "x"}), id="object-without-position"),
        pytest.param(_cursor({"created_at": "yesterday", "id": "x"}), id="position-not-a-time"),
        pytest.param(_cursor({"created_at": 5, "id": None}), id="position-wrong-types"),
    ],
)
async def test_a_cursor_this_api_did_not_give_out_is_a_bad_request(
    governance: httpx.AsyncClient, cursor: str
) -> None:
    listed = await governance.get("/alliances", params={"cursor": cursor}, headers=auth())
    assert_problem(listed, 400)


@pytest.mark.parametrize("limit", [0, 101, "many"])
async def test_a_page_size_out_of_range_is_invalid_input(
    governance: httpx.AsyncClient, limit: object
) -> None:
    listed = await governance.get("/alliances", params={"limit": limit}, headers=auth())
    assert assert_problem(listed, 422)["errors"][0]["location"] == "query.limit"


async def test_a_cursor_with_a_time_but_no_offset_is_refused_not_a_server_error(
    governance: httpx.AsyncClient,
) -> None:
    forged = encode_cursor({"created_at": "2026-01-01T00:00:00", "id": str(uuid.UUID(int=1))})
    listed = await governance.get("/alliances", params={"cursor": forged}, headers=auth())
    assert_problem(listed, 400)
