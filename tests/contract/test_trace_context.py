"""A request's W3C trace context (`traceparent`) travels into the events it causes, so a
trace can follow them; anything that is not valid trace context is dropped, the request is
still served, and nothing a client invents reaches the event envelope."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.conftest import auth, charter

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
VALID = f"00-{TRACE}-{PARENT}-01"

DROPPED = [
    pytest.param("x" * 8192, id="8-KB-of-text"),
    pytest.param(f"00-{TRACE}-{PARENT}-01-" + "x" * 8000, id="version-00-with-8-KB-more"),
    pytest.param(f"ff-{TRACE}-{PARENT}-01", id="version-ff"),
    pytest.param(f"00-{'0' * 32}-{PARENT}-01", id="all-zero-trace-id"),
    pytest.param(f"00-{TRACE}-{'0' * 16}-01", id="all-zero-parent-id"),
    pytest.param(f"00-{TRACE.upper()}-{PARENT}-01", id="upper-case"),
    pytest.param(f"00-{TRACE}-{PARENT}-1", id="short-flags"),
    pytest.param(f"0-{TRACE}-{PARENT}-01", id="short-version"),
    pytest.param(f"01-{TRACE}-{PARENT}-01x", id="later-version-without-a-dash-after"),
    pytest.param("", id="empty"),
]


async def _traceparent_stored(database_url: str, alliance_id: str) -> str | None:
    """The trace context in the envelope of the event that created the alliance, read from
    governance's event store."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        stored: str | None = await conn.fetchval(
            "SELECT envelope->>'traceparent' FROM governance.events WHERE alliance_id = $1",
            alliance_id,
        )
        return stored
    finally:
        await conn.close()


async def _create_with(governance: httpx.AsyncClient, headers: list[tuple[str, str]]) -> str:
    created = await governance.post(
        "/alliances", json=charter(), headers=[*auth().items(), *headers]
    )
    assert created.status_code == 201, created.text
    alliance_id: str = created.json()["id"]
    return alliance_id


async def test_valid_trace_context_reaches_the_event(
    governance: httpx.AsyncClient, database_url: str
) -> None:
    alliance_id = await _create_with(governance, [("traceparent", VALID)])
    assert await _traceparent_stored(database_url, alliance_id) == VALID


async def test_a_later_version_keeps_only_the_fields_this_version_defines(
    governance: httpx.AsyncClient, database_url: str
) -> None:
    """W3C: a parser reads a higher version's first four fields and ignores what follows
    its dash, so what follows is never stored."""
    later = f"01-{TRACE}-{PARENT}-01"
    alliance_id = await _create_with(governance, [("traceparent", later + "-" + "x" * 8000)])
    assert await _traceparent_stored(database_url, alliance_id) == later


@pytest.mark.parametrize("traceparent", DROPPED)
async def test_invalid_trace_context_is_dropped_and_the_request_served(
    governance: httpx.AsyncClient, database_url: str, traceparent: str
) -> None:
    alliance_id = await _create_with(governance, [("traceparent", traceparent)])
    assert await _traceparent_stored(database_url, alliance_id) is None


async def test_two_trace_contexts_are_none(
    governance: httpx.AsyncClient, database_url: str
) -> None:
    """W3C: a request with more than one traceparent has no valid one."""
    other = f"00-{TRACE[::-1]}-{PARENT}-01"
    alliance_id = await _create_with(governance, [("traceparent", VALID), ("traceparent", other)])
    assert await _traceparent_stored(database_url, alliance_id) is None
