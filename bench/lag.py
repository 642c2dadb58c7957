"""2. End-to-end lag: governance POST returned -> scorecard's `alliances` has the row.

Kernel: both services in this process (their app lifespans run as in tests/conftest.py
`serve`: runtime, outbox relay, projection runners), requests over httpx.ASGITransport,
alliances created one after another. After each POST returns, the row is awaited with
`ProjectionRunner.changed()` (armed before each look, so no announcement is missed) and a
primary-key lookup in scorecard.alliances on a separate connection.

Baseline: the same hops written by hand with no kernel: an autocommit INSERT into an events
table whose trigger NOTIFYs, a LISTENing relay that publishes new rows to the same JetStream
server (waiting for acks), and a push subscriber that inserts the row into a read table.
Measured the same way, from the INSERT returning to the row being there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import nats
from fastapi import FastAPI
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from bench.figures import Figure, percentile, value_below
from bench.stack import JWT_SECRET, SECRETS_KEYS, Stack
from concord.auth import mint_token
from concord.projections import ProjectionRunner

DATABASE = "bench_lag"
TARGET_P99_MS = 100.0
RAW_STREAM = "BENCH_RAW_LAG"
RAW_SUBJECT = "bench.raw.lag"


def charter(i: int) -> dict[str, Any]:
    return {
        "name": f"Alliance {i}",
        "purpose": "Win mid-market banking deals together",
        "goals": ["Grow joint revenue to 10M", "Launch a co-sold offering"],
        "partners": [{"org_id": "acme", "name": "Acme"}, {"org_id": "globex", "name": "Globex"}],
    }


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """As tests/conftest.py `serve`: the app's lifespan runs, requests go over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield client


class RowWatch:
    """Waits for a row by primary key, woken by a signal and bounded by a poll interval."""

    def __init__(self, conn: asyncpg.Connection, table: str) -> None:
        self.conn = conn
        self.query = f"SELECT 1 FROM {table} WHERE alliance_id = $1"

    async def wait(self, key: uuid.UUID, signal: Any, timeout: float) -> bool:
        """`signal()` returns an awaitable that resolves on the next commit of the writer."""
        deadline = time.perf_counter() + timeout
        while True:
            waiter = asyncio.ensure_future(signal())
            await asyncio.sleep(0)  # let it take hold of the current event before we look
            try:
                if await self.conn.fetchval(self.query, key):
                    return True
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), min(remaining, 0.05))
            finally:
                waiter.cancel()


async def _kernel(stack: Stack, commands: int, seconds: float) -> dict[str, Any]:
    from governance.app import create_app as governance_app
    from governance.settings import GovernanceSettings
    from scorecard.app import create_app as scorecard_app
    from scorecard.settings import ScorecardSettings

    common = {
        "database_url": stack.url(DATABASE),
        "nats_url": stack.nats.url,
        "jwt_secret": JWT_SECRET,
        "secrets_keys": SECRETS_KEYS,
        # The request log (and the "connection lost" at stop) would go to this terminal;
        # everything else is as deployed.
        "log_level": "ERROR",
    }
    governance = governance_app(GovernanceSettings(**common))
    scorecard = scorecard_app(ScorecardSettings(**common))
    runner: ProjectionRunner = scorecard.state.runtime.runners["alliances"]
    headers = {
        "Authorization": "Bearer "
        + mint_token(JWT_SECRET, sub="bench", org="acme", roles=["alliance_manager"])
    }
    lags: list[float] = []
    posts: list[float] = []
    relay_hops: list[float] = []
    projection_hops: list[float] = []
    missed = 0
    # A plain NATS tap on governance's subjects: when each event reached NATS, which splits
    # the lag into the relay's hop (commit -> NATS) and the projection's (NATS -> row).
    tap = await nats.connect(stack.nats.url)
    on_bus: dict[str, float] = {}

    async def seen(msg: Any) -> None:
        on_bus[json.loads(msg.data)["allianceid"]] = time.perf_counter()

    await tap.subscribe("concord.governance.alliance.>", cb=seen)
    watcher = await asyncpg.connect(stack.dsn(DATABASE))
    try:
        async with serve(scorecard), serve(governance) as client:
            watch = RowWatch(watcher, "scorecard.alliances")

            async def one(i: int, record: bool) -> None:
                nonlocal missed
                started = time.perf_counter()
                response = await client.post("/alliances", json=charter(i), headers=headers)
                returned = time.perf_counter()
                if response.status_code != 201:
                    raise RuntimeError(f"create alliance: {response.status_code} {response.text}")
                key = uuid.UUID(response.json()["id"])
                found = await watch.wait(key, runner.changed, timeout=10.0)
                if not record:
                    return
                if found:
                    applied = time.perf_counter()
                    lags.append(applied - returned)
                    posts.append(returned - started)
                    published = on_bus.pop(str(key), None)
                    if published is not None:
                        relay_hops.append(published - returned)
                        projection_hops.append(applied - published)
                else:
                    missed += 1

            for i in range(20):  # warm-up: streams, consumers, plans
                await one(i, record=False)
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()
            for i in range(commands):
                if time.perf_counter() > deadline:
                    break
                await one(i, record=True)
            elapsed = time.perf_counter() - started
    finally:
        await watcher.close()
        await tap.close()
    return {
        "lags": lags,
        "posts": posts,
        "relay_hops": relay_hops,
        "projection_hops": projection_hops,
        "missed": missed,
        "elapsed": elapsed,
    }


RAW_DDL = [
    "CREATE SCHEMA IF NOT EXISTS bench_raw",
    """CREATE TABLE IF NOT EXISTS bench_raw.lag_events (
        position bigserial PRIMARY KEY, alliance_id uuid NOT NULL, envelope jsonb NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bench_raw.lag_read (
        alliance_id uuid PRIMARY KEY, name text NOT NULL)""",
    """CREATE OR REPLACE FUNCTION bench_raw.lag_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('bench_raw_lag', ''); RETURN NULL; END $$""",
    """CREATE OR REPLACE TRIGGER lag_appended AFTER INSERT ON bench_raw.lag_events
        FOR EACH STATEMENT EXECUTE FUNCTION bench_raw.lag_notify()""",
]


async def _raw(stack: Stack, commands: int, seconds: float) -> dict[str, Any]:
    dsn = stack.dsn(DATABASE)
    writer, relay_conn, reader_conn, watcher = [await asyncpg.connect(dsn) for _ in range(4)]
    nc = await nats.connect(stack.nats.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=RAW_STREAM, subjects=[RAW_SUBJECT]))
    woken = asyncio.Event()
    applied = asyncio.Event()

    def announce_applied() -> None:
        nonlocal applied
        applied.set()
        applied = asyncio.Event()

    async def next_applied() -> None:
        await applied.wait()

    async def relay() -> None:
        last = 0
        while True:
            await woken.wait()
            woken.clear()
            rows = await relay_conn.fetch(
                "SELECT position, envelope FROM bench_raw.lag_events WHERE position > $1 "
                "ORDER BY position",
                last,
            )
            acks = [await js.publish_async(RAW_SUBJECT, row["envelope"].encode()) for row in rows]
            await asyncio.gather(*acks)
            if rows:
                last = rows[-1]["position"]

    async def on_message(msg: Any) -> None:
        event = json.loads(msg.data)
        await reader_conn.execute(
            "INSERT INTO bench_raw.lag_read VALUES ($1, $2) ON CONFLICT DO NOTHING",
            uuid.UUID(event["id"]),
            event["name"],
        )
        await msg.ack()
        announce_applied()

    await relay_conn.add_listener("bench_raw_lag", lambda *_: woken.set())
    relay_task = asyncio.create_task(relay())
    sub = await js.subscribe(
        RAW_SUBJECT,
        cb=on_message,
        manual_ack=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT),
    )
    watch = RowWatch(watcher, "bench_raw.lag_read")
    lags: list[float] = []
    missed = 0

    async def one(i: int, record: bool) -> None:
        nonlocal missed
        key = uuid.uuid4()
        envelope = json.dumps({"id": str(key), **charter(i)})
        await writer.execute(
            "INSERT INTO bench_raw.lag_events (alliance_id, envelope) VALUES ($1, $2::jsonb)",
            key,
            envelope,
        )
        returned = time.perf_counter()
        found = await watch.wait(key, next_applied, timeout=10.0)
        if record:
            if found:
                lags.append(time.perf_counter() - returned)
            else:
                missed += 1

    try:
        for i in range(20):
            await one(i, record=False)
        deadline = time.perf_counter() + seconds
        for i in range(commands):
            if time.perf_counter() > deadline:
                break
            await one(i, record=True)
    finally:
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
        await sub.unsubscribe()
        await js.delete_stream(RAW_STREAM)
        await nc.close()
        for conn in (writer, relay_conn, reader_conn, watcher):
            await conn.close()
    return {"lags": lags, "missed": missed}


async def run(stack: Stack, *, commands: int = 1000, seconds: float = 60.0) -> list[Figure]:
    await stack.create_database(DATABASE)
    await stack.empty_jetstream()
    admin = await asyncpg.connect(stack.dsn(DATABASE))
    try:
        for statement in RAW_DDL:
            await admin.execute(statement)
    finally:
        await admin.close()

    raw = await _raw(stack, commands, seconds)
    kernel = await _kernel(stack, commands, seconds)
    ms = 1000.0
    details = {
        "mode": "in-process: both apps' lifespans in this event loop, httpx.ASGITransport",
        "commands": len(kernel["lags"]),
        "missed_after_10s": kernel["missed"],
        "raw_commands": len(raw["lags"]),
        "raw_missed_after_10s": raw["missed"],
        "post_latency_p50_ms": round(percentile(kernel["posts"], 50) * ms, 3),
        "post_latency_p99_ms": round(percentile(kernel["posts"], 99) * ms, 3),
        "lag_max_ms": round(max(kernel["lags"], default=float("nan")) * ms, 3),
        "relay_hop_p50_ms": round(percentile(kernel["relay_hops"], 50) * ms, 3),
        "relay_hop_p99_ms": round(percentile(kernel["relay_hops"], 99) * ms, 3),
        "projection_hop_p50_ms": round(percentile(kernel["projection_hops"], 50) * ms, 3),
        "projection_hop_p99_ms": round(percentile(kernel["projection_hops"], 99) * ms, 3),
        "seconds": round(kernel["elapsed"], 2),
        "raw_lag_max_ms": round(max(raw["lags"], default=float("nan")) * ms, 3),
    }
    baseline = "hand-written INSERT->NOTIFY->JetStream->INSERT"
    return [
        Figure(
            key="lag_p50",
            label="2 e2e lag p50",
            unit="ms",
            value=percentile(kernel["lags"], 50) * ms,
            baseline=percentile(raw["lags"], 50) * ms,
            baseline_label=baseline,
            details=details,
        ),
        Figure(
            key="lag_p99",
            label="2 e2e lag p99",
            unit="ms",
            value=percentile(kernel["lags"], 99) * ms,
            baseline=percentile(raw["lags"], 99) * ms,
            baseline_label=baseline,
            target=f"p99 < {TARGET_P99_MS:.0f} ms",
            check=value_below(TARGET_P99_MS),
            details=details,
        ),
    ]
