"""Tests here share one running stack per module (a database and a JetStream of its own):
each test opens an alliance of its own, and every route and event-store query is scoped by
alliance, so tests cannot see each other's data. Starting and stopping both services around
every test would cost about two seconds a test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Stack
from tests.integration.scorecard.support import Services, running_services


@pytest.fixture(scope="module")
async def services(stack: Stack) -> AsyncIterator[Services]:
    async with running_services(stack) as running:
        yield running


@pytest.fixture(scope="module")
def governance(services: Services) -> httpx.AsyncClient:
    """Overrides the per-test service: the `board` fixture opens its alliance here."""
    return services.governance


@pytest.fixture(scope="module")
def scorecard(services: Services) -> httpx.AsyncClient:
    """Overrides the per-test service: the `board` fixture opens its scorecard here."""
    return services.scorecard
