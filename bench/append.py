"""1. Kernel append throughput.

Kernel: `EventStore.append` inside `engine.begin()`, one small CloudEvent (built by an
`EventRegistry`) per transaction, each writer on its own streams, engine from
`concord.db.create_engine` as every service makes it.
Baseline: raw asyncpg, one autocommit single-row INSERT per statement, same row shape, into a
table with the same columns, keys and indexes (but not the kernel's stream-order trigger).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg

from bench.figures import Figure, ratio_at_least
from bench.stack import Stack
from concord.db import create_engine
from concord.domain import DomainEvent
from concord.events import EventRegistry
from concord.eventstore import EventStore
from concord.migrations import migrate

DATABASE = "bench_append"
SCHEMA = "bench_append"
EVENTS_PER_STREAM = 10
TARGET = 0.5

RAW_DDL = [
    "CREATE SCHEMA IF NOT EXISTS bench_raw",
    """CREATE TABLE IF NOT EXISTS bench_raw.events (
        position bigserial PRIMARY KEY,
        transaction_id bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
        event_id uuid NOT NULL UNIQUE,
        stream_id text NOT NULL,
        stream_version integer NOT NULL,
        event_type text NOT NULL,
        alliance_id text,
        occurred_at timestamptz NOT NULL,
        envelope jsonb NOT NULL,
        CONSTRAINT raw_events_stream_version UNIQUE (stream_id, stream_version)
    )""",
    """CREATE INDEX IF NOT EXISTS raw_events_commit_order
        ON bench_raw.events (transaction_id, position)""",
]
RAW_INSERT = """INSERT INTO bench_raw.events
    (event_id, stream_id, stream_version, event_type, alliance_id, occurred_at, envelope)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"""


class PulseRecorded(DomainEvent):
    """A small event: one reading recorded on a stream."""

    aggregate: ClassVar[str] = "pulse"
    reading: int


def registry() -> EventRegistry:
    events = EventRegistry(SCHEMA)
    events.register(PulseRecorded)
    return events


def raw_row(stream: str, version: int, event_type: str, reading: int) -> tuple[Any, ...]:
    """The arguments of RAW_INSERT for one small event, its envelope built by hand."""
    event_id = uuid.uuid4()
    now = datetime.now(UTC)
    envelope = json.dumps(
        {
            "specversion": "1.0",
            "id": str(event_id),
            "source": f"/concord/{SCHEMA}",
            "type": event_type,
            "subject": stream,
            "time": now.isoformat(),
            "datacontenttype": "application/json",
            "data": {"reading": reading},
            "allianceid": None,
            "streamversion": version,
            "correlationid": None,
            "causationid": None,
            "traceparent": None,
            "actorsub": None,
            "actororg": None,
        }
    )
    return (event_id, stream, version, event_type, None, now, envelope)


Writer = Callable[[int, int, float], Awaitable[int]]


async def _measure(
    writers: int, per_writer: int, seconds: float, write: Writer
) -> tuple[int, float]:
    """Run `writers` concurrent writers for `per_writer` events or until the deadline;
    returns (events written, elapsed seconds)."""
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    done = await asyncio.gather(*(write(w, per_writer, deadline) for w in range(writers)))
    return sum(done), time.perf_counter() - started


async def _kernel(url: str, writers: int, per_writer: int, seconds: float) -> float:
    engine = create_engine(url, pool_size=writers)
    store = EventStore(SCHEMA)
    events = registry()
    run = uuid.uuid4().hex[:8]

    async def write(w: int, n: int, deadline: float) -> int:
        done = 0
        for i in range(n):
            if time.perf_counter() > deadline:
                break
            stream = f"pulse-{run}-{w}-{i // EVENTS_PER_STREAM}"
            version = i % EVENTS_PER_STREAM
            event = events.envelope(
                PulseRecorded(reading=i),
                stream_id=stream,
                stream_version=version + 1,
                alliance_id=None,
            )
            async with engine.begin() as conn:
                await store.append(conn, stream, version, [event])
            done += 1
        return done

    try:
        # Open the pool's connections before the clock starts (the raw side connects first too).
        async def touch() -> None:
            async with engine.connect():
                await asyncio.sleep(0.05)

        await asyncio.gather(*(touch() for _ in range(writers)))
        count, elapsed = await _measure(writers, per_writer, seconds, write)
    finally:
        await engine.dispose()
    return count / elapsed


async def _raw(
    dsn: str,
    writers: int,
    per_writer: int,
    seconds: float,
    *,
    table: str = "bench_raw.events",
    explicit_tx: bool = False,
) -> float:
    """Raw asyncpg writers. The flags add, one at a time, what the kernel's path does on top
    of a bare INSERT: the kernel's table (its per-row stream-order trigger), then
    BEGIN/COMMIT (an append is part of a command's transaction)."""
    conns = [await asyncpg.connect(dsn) for _ in range(writers)]
    run = uuid.uuid4().hex[:8]
    event_type = f"concord.{SCHEMA}.pulse.pulse_recorded.v1"
    insert = RAW_INSERT.replace("bench_raw.events", table)

    async def write(w: int, n: int, deadline: float) -> int:
        conn = conns[w]
        done = 0
        for i in range(n):
            if time.perf_counter() > deadline:
                break
            stream = f"raw-{run}-{w}-{i // EVENTS_PER_STREAM}"
            version = i % EVENTS_PER_STREAM + 1
            args = raw_row(stream, version, event_type, i)
            if explicit_tx:
                async with conn.transaction():
                    await conn.execute(insert, *args)
            else:
                await conn.execute(insert, *args)
            done += 1
        return done

    try:
        count, elapsed = await _measure(writers, per_writer, seconds, write)
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return count / elapsed


async def run(
    stack: Stack,
    *,
    events: dict[int, int] | None = None,
    seconds: float = 6.0,
    rounds: int = 2,
    ladder: bool = True,
) -> tuple[list[Figure], dict[str, dict[str, float]]]:
    """One figure per concurrency (best of `rounds`, raw and kernel alternating), and a
    ladder of variants from raw to kernel that shows where the kernel's time goes."""
    events = events or {1: 3000, 8: 8000}
    await stack.create_database(DATABASE)
    url, dsn = stack.url(DATABASE), stack.dsn(DATABASE)
    engine = create_engine(url, pool_size=1)
    try:
        await migrate(engine, SCHEMA)
    finally:
        await engine.dispose()
    admin = await asyncpg.connect(dsn)
    try:
        for statement in RAW_DDL:
            await admin.execute(statement)
    finally:
        await admin.close()

    # Warm up both paths (plans, pools, imports) before anything is timed.
    await _raw(dsn, 1, 300, 2.0)
    await _kernel(url, 1, 300, 2.0)

    kernel_table = f"{SCHEMA}.events"
    figures: list[Figure] = []
    steps: dict[str, dict[str, float]] = {}
    for writers, total in events.items():
        per_writer = max(1, total // writers)
        half, short = max(1, per_writer // 2), seconds / 2

        # (name, kernel?, full size?, options), in ladder order: each adds one thing the
        # kernel's path does. Each round measures every variant once; each keeps its best.
        variants: list[tuple[str, bool, bool, dict[str, Any]]] = [
            ("raw autocommit INSERT", False, True, {}),
            ("+ kernel table (stream-order trigger)", False, False, {"table": kernel_table}),
            ("+ BEGIN/COMMIT", False, False, {"table": kernel_table, "explicit_tx": True}),
            ("kernel (EventStore.append, SQLAlchemy)", True, True, {}),
        ]
        if not ladder:
            variants = [v for v in variants if v[2]]

        rates: dict[str, list[float]] = {name: [] for name, *_ in variants}
        for _ in range(rounds):
            for name, kernel, full, options in variants:
                n, cap = (per_writer, seconds) if full else (half, short)
                if kernel:
                    rates[name].append(await _kernel(url, writers, n, cap, **options))
                else:
                    rates[name].append(await _raw(dsn, writers, n, cap, **options))
        raw_rates = rates["raw autocommit INSERT"]
        kernel_rates = rates["kernel (EventStore.append, SQLAlchemy)"]
        figures.append(
            Figure(
                key=f"append_{writers}w",
                label=f"1 append, {writers} writer{'s' if writers > 1 else ''}",
                unit="events/s",
                value=max(kernel_rates),
                baseline=max(raw_rates),
                baseline_label="raw asyncpg autocommit INSERT, same row shape",
                target=f">= {TARGET:.0%} of raw",
                check=ratio_at_least(TARGET),
                details={
                    "writers": writers,
                    "events_per_writer_max": per_writer,
                    "seconds_cap": seconds,
                    "kernel_rounds": [round(r, 1) for r in kernel_rates],
                    "raw_rounds": [round(r, 1) for r in raw_rates],
                },
            )
        )
        if ladder:
            steps[f"{writers}w"] = {name: max(found) for name, found in rates.items()}
    return figures, steps
