"""`/metrics` stays what Prometheus can afford to scrape whatever strangers send: every label
comes from a closed set, and rendering it never holds up the requests being served."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from governance.app import create_app
from governance.settings import GovernanceSettings
from tests.contract.conftest import assert_problem, listening

KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
LABELS = re.compile(r'(\w+)="([^"]*)"')


@pytest.fixture
async def governance_app(settings: Callable[..., Any]) -> AsyncIterator[tuple[Any, str]]:
    """Governance behind a real uvicorn (its HTTP parser is part of what is under test)."""
    app = create_app(settings(GovernanceSettings))
    async with listening(app) as url:
        yield app, url


def _http_series(exposition: str) -> list[dict[str, str]]:
    return [
        dict(LABELS.findall(line))
        for line in exposition.splitlines()
        if line.startswith(("concord_http_requests_total{", "concord_http_request_duration"))
    ]


async def _odd_requests(client: httpx.AsyncClient, i: int) -> None:
    """The i-th of three odd requests: an invented method (a token, as RFC 9110 allows; one
    in ten 4 KB long) on a route, the same on a path no route serves, and a GET of a path
    no route serves. uvicorn's parser takes any token as a method: all reach the app."""
    method = f"X{i}M" + ("Q" * 4000 if i % 10 == 0 else "")
    assert_problem(await client.request(method, "/alliances"), 405)
    assert_problem(await client.request(method, f"/x/{uuid.uuid4()}/{i}"), 404)
    assert_problem(await client.get(f"/alliances/{uuid.uuid4()}/z{'z' * i}"), 404)


async def test_a_flood_of_invented_methods_and_paths_leaves_the_metrics_bounded(
    governance_app: tuple[Any, str],
) -> None:
    app, url = governance_app
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        # One of each odd kind first, and a scrape: the few series they fall into exist
        # from then on, and only their counts change.
        await _odd_requests(client, 0)
        await client.get("/metrics")
        before = len((await client.get("/metrics")).content)
        for i in range(1, 300):
            await _odd_requests(client, i)
        scraped = await client.get("/metrics")

    assert scraped.status_code == 200
    grown = len(scraped.content) - before
    assert grown < 4096, f"/metrics grew by {grown} bytes over 897 odd requests"
    templates = {*app.openapi()["paths"], *(getattr(route, "path", "") for route in app.routes)}
    # The registry is the process's: other tests' services have series in it too.
    series = [labels for labels in _http_series(scraped.text) if labels["service"] == "governance"]
    assert series
    for labels in series:
        assert labels["method"] in KNOWN_METHODS, labels
        assert labels["route"] in templates | {"unmatched"}, labels
        assert re.fullmatch(r"[1-5]xx", labels.get("status", "2xx")), labels


async def test_metrics_name_the_status_class_and_the_route_template(
    governance_app: tuple[Any, str],
) -> None:
    _, url = governance_app
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await client.get(f"/alliances/{uuid.uuid4()}")  # 401: no token
        scraped = (await client.get("/metrics")).text
    assert {
        "service": "governance",
        "method": "GET",
        "route": "/alliances/{alliance_id}",
        "status": "4xx",
    } in _http_series(scraped)


class _SlowCollector:
    """A collector that holds the scrape until the test lets it go (or 10 s pass): while it
    holds, the service must still answer."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.held_until_released = False

    def collect(self) -> Iterator[Metric]:
        self.entered.set()
        self.held_until_released = self.released.wait(timeout=10)
        yield from ()


async def test_a_scrape_does_not_hold_up_other_requests(governance: httpx.AsyncClient) -> None:
    slow = _SlowCollector()
    REGISTRY.register(slow)  # type: ignore[arg-type]
    try:
        scrape = asyncio.create_task(governance.get("/metrics"))
        assert await asyncio.to_thread(slow.entered.wait, 10)
        live = await governance.get("/livez")
        slow.released.set()
        assert live.status_code == 200
        assert (await scrape).status_code == 200
    finally:
        slow.released.set()
        REGISTRY.unregister(slow)  # type: ignore[arg-type]
    assert slow.held_until_released, "/livez was not answered while /metrics was rendering"
