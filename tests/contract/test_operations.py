"""What SRE teams rely on: liveness, readiness, Prometheus metrics and request ids."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.conftest import auth
from tests.contract.conftest import assert_problem


async def ready(client: httpx.AsyncClient, timeout: float = 5.0) -> httpx.Response:
    """/readyz once everything answers: the service is ready (200) as soon as PostgreSQL
    answers, and reports "degraded" until the bus has connected in the background."""
    deadline = time.monotonic() + timeout
    while True:
        answered = await client.get("/readyz")
        assert answered.status_code == 200, answered.text
        if answered.json()["status"] == "ok" or time.monotonic() > deadline:
            return answered
        assert answered.json() == {
            "status": "degraded",
            "checks": {"postgres": True, "nats": False},
        }
        await asyncio.sleep(0.05)


async def test_a_running_service_is_live_ready_and_soon_fully_connected(
    governance: httpx.AsyncClient,
) -> None:
    live = await governance.get("/livez")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    answered = await ready(governance)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"status": "ok", "checks": {"postgres": True, "nats": True}}


async def test_metrics_count_answered_requests(governance: httpx.AsyncClient) -> None:
    await governance.get("/alliances", headers=auth())
    scraped = await governance.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert any(
        line.startswith("concord_http_requests_total{")
        and 'service="governance"' in line
        and 'route="/alliances"' in line
        and 'status="2xx"' in line
        for line in scraped.text.splitlines()
    ), scraped.text


async def test_operations_endpoints_need_no_token(scorecard: httpx.AsyncClient) -> None:
    """Kubernetes probes and Prometheus scrapes carry no bearer token."""
    assert (await ready(scorecard)).status_code == 200
    for path in ("/livez", "/readyz", "/metrics"):
        assert (await scorecard.get(path)).status_code == 200, path


async def test_a_given_request_id_is_echoed_back(governance: httpx.AsyncClient) -> None:
    answered = await governance.get("/livez", headers={"X-Request-ID": "frontend-42.a_b"})
    assert answered.headers["x-request-id"] == "frontend-42.a_b"


async def test_a_request_without_an_id_gets_one(governance: httpx.AsyncClient) -> None:
    answered = await governance.get("/livez")
    uuid.UUID(answered.headers["x-request-id"])


async def test_an_unusable_request_id_is_replaced_not_echoed(governance: httpx.AsyncClient) -> None:
    """An id is copied into logs, so one with spaces or markup is not trusted."""
    answered = await governance.get("/livez", headers={"X-Request-ID": "<script> x"})
    uuid.UUID(answered.headers["x-request-id"])


async def test_a_problem_names_the_request_it_answers(governance: httpx.AsyncClient) -> None:
    """A frontend team can quote the id from the body and SRE finds the log line."""
    answered = await governance.get("/alliances", headers={"X-Request-ID": "trace-me"})
    problem = assert_problem(answered, 401)
    assert problem["request_id"] == answered.headers["x-request-id"] == "trace-me"
    assert problem["instance"] == "/alliances"
