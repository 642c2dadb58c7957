"""The test stack: a real PostgreSQL and a real NATS, started once per session on free ports
(so the suite runs beside `make run`), a fresh database and empty JetStream for every test."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from fastapi import FastAPI

from concord.auth import mint_token
from concord.clock import ManualClock
from concord.devstack import EmbeddedNats, EmbeddedPostgres, free_port
from concord.embedded import NATS_ADMIN, nats_users
from concord.settings import ServiceSettings

JWT_SECRET = "test-secret-with-enough-length-for-hs256"
# The Fernet key that seals the services' secrets at rest in tests (the first seals).
SECRETS_KEYS = "HOYJBrJ_vqsyfAWV3SXL8NWVJBAzEJ2Oqxl8FuYpA5g="
# Scorecard tests run on a clock that stands before the periods they record, so no KPI's
# actual falls overdue behind their backs; the timer tests move it on purpose.
BEFORE_THE_PERIODS = datetime(2025, 11, 15, 9, 0, tzinfo=UTC)
# The test stack's NATS users are the embedded default's, with passwords of this session, and
# the kernel tests' own service.
NATS_PASSWORDS: defaultdict[str, str] = defaultdict(lambda: secrets.token_urlsafe(24))
TEST_SERVICES = {"kerneltest": ("governance", "kerneltest")}


@dataclass
class Stack:
    postgres: EmbeddedPostgres
    nats: EmbeddedNats


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="concord-test-") as tmp:
        root = Path(tmp)
        postgres = EmbeddedPostgres(root / "postgres", free_port())
        users = nats_users(NATS_PASSWORDS.__getitem__, TEST_SERVICES)
        nats_server = EmbeddedNats(root / "nats", free_port(), users=users)
        postgres.start()
        nats_server.start()
        try:
            yield Stack(postgres, nats_server)
        finally:
            nats_server.stop()
            postgres.stop()


@asynccontextmanager
async def fresh_database(stack: Stack, prefix: str = "t") -> AsyncIterator[str]:
    """A database of its own, dropped afterwards: no state leaks between its users."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.postgres.url(driver="postgresql"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield stack.postgres.url(name)
    finally:
        admin = await asyncpg.connect(stack.postgres.url(driver="postgresql"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def empty_jetstream(stack: Stack) -> str:
    """The session's NATS, running and with no streams left from earlier users."""
    if stack.nats.process is None or stack.nats.process.poll() is not None:
        stack.nats.start()  # a test that stopped NATS may have failed before restarting it
    nc = await nats_as(stack)
    js = nc.jetstream()
    for stream in await js.streams_info():
        await js.delete_stream(stream.config.name)
    await nc.close()
    return stack.nats.url


async def nats_as(stack: Stack, user: str = NATS_ADMIN) -> nats.aio.client.Client:
    """A connection to the test stack's NATS as one of its users (`admin` may do anything)."""
    return await nats.connect(stack.nats.url, user=user, password=NATS_PASSWORDS[user])


def nats_login(service: str) -> dict[str, str]:
    """A service's NATS user, as its settings take it."""
    return {"nats_user": service, "nats_password": NATS_PASSWORDS[service]}


@pytest.fixture
async def database_url(stack: Stack) -> AsyncIterator[str]:
    """A database of its own for each test."""
    async with fresh_database(stack) as url:
        yield url


@pytest.fixture
async def nats_url(stack: Stack) -> AsyncIterator[str]:
    """An empty JetStream for each test."""
    yield await empty_jetstream(stack)


@pytest.fixture
def settings(database_url: str, nats_url: str) -> Callable[..., Any]:
    """Build a service's settings pointed at this test's database and NATS."""

    def build(cls: type[ServiceSettings] = ServiceSettings, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "database_url": database_url,
            "nats_url": nats_url,
            **nats_login(cls.service),
            "jwt_secret": JWT_SECRET,
            "secrets_keys": SECRETS_KEYS,
            "database_pool_size": 5,
            "relay_poll_interval": 0.5,
            "read_your_writes_wait": 1.0,
            **overrides,
        }
        return cls(**values)

    return build


def token(
    org: str = "acme", roles: tuple[str, ...] = ("alliance_manager",), sub: str = "alice"
) -> str:
    return mint_token(JWT_SECRET, sub=sub, org=org, roles=list(roles))


def auth(
    org: str = "acme", roles: tuple[str, ...] = ("alliance_manager",), sub: str = "alice"
) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(org, roles, sub)}"}


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (runtime, relay, projections) and talk to it over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def process_env(database_url: str, nats_url: str, service: str) -> dict[str, str]:
    """The environment a process of `service` (uvicorn, `concord ...`) reads this test's stack
    from."""
    return {
        **os.environ,
        "CONCORD_DATABASE_URL": database_url,
        "CONCORD_NATS_URL": nats_url,
        "CONCORD_NATS_USER": service,
        "CONCORD_NATS_PASSWORD": NATS_PASSWORDS[service],
        "CONCORD_JWT_SECRET": JWT_SECRET,
        "CONCORD_SECRETS_KEYS": SECRETS_KEYS,
    }


async def until_ready(client: httpx.AsyncClient, timeout: float = 30.0) -> None:
    """Wait for a service process to answer /readyz (it may not be listening yet)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


@pytest.fixture
async def governance(settings: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    from governance.app import create_app
    from governance.settings import GovernanceSettings

    async with serve(create_app(settings(GovernanceSettings))) as client:
        yield client


@pytest.fixture
async def scorecard(settings: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    from scorecard.app import create_app
    from scorecard.settings import ScorecardSettings

    app = create_app(settings(ScorecardSettings), clock=ManualClock(BEFORE_THE_PERIODS))
    async with serve(app) as client:
        yield client


def charter(*orgs: str, name: str = "Acme x Globex") -> dict[str, Any]:
    orgs = orgs or ("acme", "globex")
    return {
        "name": name,
        "purpose": "Win mid-market banking deals together",
        "goals": ["Grow joint revenue to 10M", "Launch a co-sold offering"],
        "partners": [{"org_id": org, "name": org.capitalize()} for org in orgs],
    }
