"""Long transactions: the commit-safe watermark waits for the oldest open transaction in the
cluster (ADR 0001). A relay held back by one waits without spinning, says which one it is,
and publishes as soon as it ends; the server ends a service's own session left idle in a
transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from concord.bus import stream_name
from concord.runtime import ServiceRuntime
from tests.integration.conftest import SERVICE, KernelTestSettings, new_stream, pulses, registry


def held_back_seconds() -> float | None:
    return REGISTRY.get_sample_value("concord_relay_held_back_seconds", {"service": SERVICE})


async def published(js: JetStreamContext) -> int:
    return (await js.stream_info(stream_name(SERVICE))).state.messages


@contextlib.asynccontextmanager
async def left_open(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, int, str]]:
    """Another client's session, idle inside a transaction that holds an xid."""
    conn = await asyncpg.connect(
        database_url.replace("+asyncpg", ""), server_settings={"application_name": "left-open"}
    )
    try:
        await conn.execute("BEGIN")
        xid = await conn.fetchval("SELECT pg_current_xact_id()::text")
        yield conn, await conn.fetchval("SELECT pg_backend_pid()"), xid
    finally:
        await conn.close()


@pytest.fixture
async def runtime(settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    rt = ServiceRuntime(
        settings(KernelTestSettings, relay_poll_interval=0.5, relay_held_back_warning_after=0.3),
        registry=registry(),
    )
    await rt.install()
    await rt.bus.connect()
    await rt.bus.ensure_stream(SERVICE)
    yield rt
    await rt.bus.close()
    await rt.engine.dispose()


async def test_a_relay_held_back_by_an_open_transaction_waits_names_it_and_then_publishes(
    runtime: ServiceRuntime,
    database_url: str,
    js: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    caplog.set_level(logging.INFO, logger="concord.outbox")
    async with left_open(database_url) as (blocker, pid, xid):
        stream = new_stream()
        async with runtime.engine.begin() as conn:  # committed, but after the open transaction
            await runtime.store.append(conn, stream, 0, pulses(stream, [1]))
        event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
        relay = asyncio.create_task(runtime.relay.run())
        try:
            await asyncio.sleep(2.0)  # held back all along: spinning would be hundreds of polls
            assert await published(js) == 0
            assert statements <= 40, f"{statements} statements while held back"
            seconds = held_back_seconds()
            assert seconds is not None and seconds >= 0.3
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]  # not one per poll
            message = warnings[0].getMessage()
            assert f"transaction {xid}" in message
            assert f"pid {pid}" in message
            assert "left-open" in message
            assert "idle in transaction" in message

            await blocker.execute("ROLLBACK")
            async with asyncio.timeout(10):
                while await published(js) < 1 or held_back_seconds() != 0:
                    await asyncio.sleep(0.02)
            assert "no longer held back" in caplog.records[-1].getMessage()
        finally:
            runtime.relay.stop()
            await asyncio.wait_for(relay, 10)
            event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)


async def test_the_server_ends_a_service_session_left_idle_in_a_transaction(
    settings: Callable[..., Any],
) -> None:
    standard = ServiceRuntime(settings(KernelTestSettings), registry=registry())
    quick = ServiceRuntime(
        settings(KernelTestSettings, database_idle_in_transaction_timeout=0.2),
        registry=registry(),
    )
    show = text("SHOW idle_in_transaction_session_timeout")
    try:
        async with standard.engine.connect() as watcher, quick.engine.connect() as idle:
            assert (await watcher.execute(show)).scalar() == "1min"
            await watcher.commit()
            assert (await idle.execute(show)).scalar() == "200ms"
            pid = (await idle.execute(text("SELECT pg_backend_pid()"))).scalar()
            await idle.execute(text("SELECT pg_current_xact_id()"))  # holds an xid, then idles

            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            async with asyncio.timeout(10):
                while (await watcher.execute(alive, {"pid": pid})).scalar():
                    await watcher.commit()
                    await asyncio.sleep(0.05)
            with pytest.raises(DBAPIError):
                await idle.execute(text("SELECT 1"))
    finally:
        await standard.engine.dispose()
        await quick.engine.dispose()
