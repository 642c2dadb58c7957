"""8. Timer firing throughput.

Setup (not timed): N meters each take a reading that asks for a check a minute later, one
command each through the command path (so N timers, scheduled in the commands' own
transactions by the decider), on a `ManualClock`; then the clock moves two minutes on.
Kernel: `runtime.scheduler.fire_due()` until it fires none. Each firing is the scheduler's
own transaction: claim the timer row (`FOR UPDATE SKIP LOCKED`), load the meter, decide the
check, append its event, mark the timer fired, commit, wake the relay. The relay leads in
this process, as in a worker, and publishes the checks while they are fired.
Baseline: raw asyncpg on a timers table of the same shape, the due rows read in batches of
the same size, then per timer one transaction: `SELECT ... FOR UPDATE` the row, insert one
event row (append's `bench_raw.events`), update its fired_at.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from bench import append, meters
from bench.figures import Figure
from bench.stack import Stack
from concord.clock import ManualClock

DATABASE = "bench_timers"
SCHEDULERS = 8  # concurrent commands while the timers are scheduled (setup only)
CHECK_EVENT = f"concord.{meters.SERVICE}.meter.reading_checked.v1"

RAW_DDL = [
    *append.RAW_DDL,
    """CREATE TABLE IF NOT EXISTS bench_raw.timers (
        stream_id text NOT NULL,
        key text NOT NULL,
        timer_id uuid NOT NULL,
        name text NOT NULL,
        alliance_id text,
        data jsonb NOT NULL,
        due_at timestamptz NOT NULL,
        correlation_id text,
        scheduled_by text,
        fired_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        parked_at timestamptz,
        PRIMARY KEY (stream_id, key)
    )""",
    """CREATE INDEX IF NOT EXISTS raw_timers_due ON bench_raw.timers (due_at)
        WHERE fired_at IS NULL AND parked_at IS NULL""",
]
RAW_SCHEDULE = """INSERT INTO bench_raw.timers
    (stream_id, key, timer_id, name, data, due_at, correlation_id, scheduled_by)
    VALUES ($1, 'check', $2, 'check', $3::jsonb, $4, $5, $5)"""
RAW_DUE = """SELECT stream_id, key, timer_id FROM bench_raw.timers
    WHERE due_at <= $1 AND fired_at IS NULL AND parked_at IS NULL ORDER BY due_at LIMIT $2"""
RAW_CLAIM = """SELECT timer_id, stream_id, key, name, alliance_id, data, due_at, correlation_id
    FROM bench_raw.timers WHERE stream_id = $1 AND key = $2 AND timer_id = $3
      AND fired_at IS NULL AND parked_at IS NULL FOR UPDATE SKIP LOCKED"""
RAW_FIRED = """UPDATE bench_raw.timers SET fired_at = $4
    WHERE stream_id = $1 AND key = $2 AND timer_id = $3"""


async def _raw(dsn: str, count: int, batch: int) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    due = meters.START + timedelta(minutes=1)
    try:
        await conn.executemany(
            RAW_SCHEDULE,
            [
                (f"raw-{i}", uuid.uuid4(), json.dumps({"reading": i}), due, f"take-{i}")
                for i in range(count)
            ],
        )
        now = due + timedelta(minutes=1)
        fired = 0
        started = time.perf_counter()
        while rows := await conn.fetch(RAW_DUE, now, batch):
            for row in rows:
                ids = (row["stream_id"], row["key"], row["timer_id"])
                async with conn.transaction():
                    timer = await conn.fetchrow(RAW_CLAIM, *ids)
                    if timer is None:
                        continue
                    reading = json.loads(timer["data"])["reading"]
                    event = append.raw_row(timer["stream_id"], 2, CHECK_EVENT, reading)
                    await conn.execute(append.RAW_INSERT, *event)
                    await conn.execute(RAW_FIRED, *ids, now)
                fired += 1
        return fired, time.perf_counter() - started
    finally:
        await conn.close()


async def _kernel(stack: Stack, count: int) -> tuple[int, float, float]:
    """(timers fired, seconds firing, seconds scheduling them)."""
    clock = ManualClock(meters.START)
    runtime = meters.meter_runtime(stack, DATABASE, clock)
    await runtime.install()
    due = meters.START + timedelta(minutes=1)
    try:
        async with meters.relay_in_this_process(runtime):

            async def schedule(first: int) -> None:
                for i in range(first, count, SCHEDULERS):
                    await meters.take(runtime, f"meter-{i}", i, check_at=due)

            started = time.perf_counter()
            await asyncio.gather(*(schedule(w) for w in range(SCHEDULERS)))
            setup = time.perf_counter() - started
            # Start from a quiet relay: it has published the readings that set the timers.
            await runtime.relay.drained(60)

            clock.advance(timedelta(minutes=2))
            fired = 0
            started = time.perf_counter()
            while found := await runtime.scheduler.fire_due():
                fired += found
            return fired, time.perf_counter() - started, setup
    finally:
        await runtime.engine.dispose()


async def run(stack: Stack, *, timers: int = 10_000) -> list[Figure]:
    await stack.create_database(DATABASE)
    await stack.empty_jetstream()
    admin = await asyncpg.connect(stack.dsn(DATABASE))
    try:
        for statement in RAW_DDL:
            await admin.execute(statement)
    finally:
        await admin.close()
    batch = meters.MeterSettings.model_fields["timer_batch_size"].default
    raw_fired, raw_seconds = await _raw(stack.dsn(DATABASE), timers, batch)
    fired, seconds, setup = await _kernel(stack, timers)
    if fired != timers or raw_fired != timers:
        raise RuntimeError(f"expected {timers} timers fired; kernel {fired}, raw {raw_fired}")
    details: dict[str, Any] = {
        "timers": timers,
        "batch_size": batch,
        "kernel_seconds": round(seconds, 2),
        "raw_seconds": round(raw_seconds, 2),
        "setup_schedule_seconds": round(setup, 2),
        "setup_commands_per_second": round(timers / setup, 1),
    }
    return [
        Figure(
            key="timers_fired",
            label="8 timers fired",
            unit="timers/s",
            value=fired / seconds,
            baseline=raw_fired / raw_seconds,
            baseline_label="raw asyncpg, per timer one transaction: SELECT FOR UPDATE, "
            "INSERT an event, UPDATE fired_at",
            details=details,
        )
    ]
