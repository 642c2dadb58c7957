"""What the HTTP contract tests share: the shape every error must have, a count of what
governance committed (the event store is the truth; the alliance list is a projection that
may lag), and a wait for the alliance directory to catch up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from concord.devstack import free_port
from tests.conftest import auth, charter

Counter = Callable[[], Awaitable[int]]


@asynccontextmanager
async def listening(app: FastAPI) -> AsyncIterator[str]:
    """The app behind a real uvicorn on a free port, on this test's event loop; yields its
    base URL. Unlike the ASGI transport, requests go through uvicorn's HTTP parser."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await serving


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the status it claims, never a framework default body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("/problems/")
    assert problem["title"]
    assert problem["detail"]
    return problem


@pytest.fixture
async def events_committed(database_url: str) -> Counter:
    """How many events governance has committed, read straight from its store."""

    async def count() -> int:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return int(await conn.fetchval("SELECT count(*) FROM governance.events"))
        finally:
            await conn.close()

    return count


async def create_alliance(
    client: httpx.AsyncClient, *orgs: str, name: str = "Acme x Globex", by: str = "acme"
) -> dict[str, Any]:
    created = await client.post("/alliances", json=charter(*orgs, name=name), headers=auth(by))
    assert created.status_code == 201, created.text
    alliance: dict[str, Any] = created.json()
    return alliance


async def version_of(client: httpx.AsyncClient, alliance_id: str) -> int:
    read = await client.get(f"/alliances/{alliance_id}", headers=auth())
    assert read.status_code == 200, read.text
    version: int = read.json()["version"]
    return version


async def directory(
    client: httpx.AsyncClient, count: int, *, org: str = "acme", timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The alliance list once the directory projection shows `count` alliances (it is fed
    through NATS, so it trails the command by a few milliseconds)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = await client.get("/alliances", params={"limit": 100}, headers=auth(org))
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.05)
