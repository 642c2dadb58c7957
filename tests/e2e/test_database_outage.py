"""PostgreSQL restarting (a failover, an upgrade): callers get a clear 503 they can retry,
nothing half-written, and the service recovers by itself."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Stack, auth, charter


async def test_a_database_restart_answers_503_then_recovers_without_a_service_restart(
    stack: Stack, governance: httpx.AsyncClient
) -> None:
    before = await governance.post("/alliances", json=charter(name="Before"), headers=auth())
    assert before.status_code == 201

    stack.postgres.stop()
    try:
        during = await governance.post("/alliances", json=charter(name="During"), headers=auth())
        assert during.status_code == 503
        assert during.headers["content-type"] == "application/problem+json"
        assert during.headers["retry-after"] == "1"
        assert during.json()["type"] == "/problems/database-unavailable"
        ready = await governance.get("/readyz")
        assert ready.status_code == 503
    finally:
        stack.postgres.start()

    async with asyncio.timeout(15):
        while True:
            after = await governance.post("/alliances", json=charter(name="After"), headers=auth())
            if after.status_code == 201:
                break
            assert after.status_code == 503, after.text
            await asyncio.sleep(0.1)
    names = set()
    async with asyncio.timeout(15):  # the directory catches up once the relay reconnects
        while names != {"Before", "After"}:
            listed = await governance.get("/alliances", headers=auth())
            names = {item["name"] for item in listed.json()["items"]}
            await asyncio.sleep(0.1)
