"""7. Commands through the command path.

Kernel: N commands, each `commands.transaction(runtime, context, work)` where `work` loads
the stream (`tx.stream`), decides one small event and appends it (`StreamWrite.append`):
load, decide, append, commit, aggregate cache, wake. Each writer on its own streams
(10 events each), the meter service's runtime wired as a service wires it. Its relay runs
in another process, as behind an API replica in production, so the wake after each commit
is a NOTIFY; the ladder shows the same path with the relay in this process too.
Baseline: raw asyncpg, one `BEGIN`, single-row INSERT, `COMMIT` per command into a table of
the same shape (append's `bench_raw.events`, without the kernel's stream-order trigger).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from bench import append, meters
from bench.figures import Figure, ratio_at_least
from bench.stack import Stack
from concord.runtime import ServiceRuntime

DATABASE = "bench_commands"
TARGET = 0.6
EVENTS_PER_STREAM = append.EVENTS_PER_STREAM
KERNEL_TABLE = f"{meters.SERVICE}.events"
EVENT_TYPE = meters.TAKEN_SUBJECT
# What `EventStore.load` asks before every decision.
RAW_LOAD = f"""SELECT envelope FROM {KERNEL_TABLE}
    WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"""


async def _raw_loaded(dsn: str, writers: int, per_writer: int, seconds: float) -> float:
    """Raw asyncpg on the kernel's table, with the stream load before each INSERT."""
    conns = [await asyncpg.connect(dsn) for _ in range(writers)]
    run = uuid.uuid4().hex[:8]
    insert = append.RAW_INSERT.replace("bench_raw.events", KERNEL_TABLE)

    async def write(w: int, n: int, deadline: float) -> int:
        conn = conns[w]
        for i in range(n):
            if time.perf_counter() > deadline:
                return i
            stream = f"rawload-{run}-{w}-{i // EVENTS_PER_STREAM}"
            version = i % EVENTS_PER_STREAM
            async with conn.transaction():
                await conn.fetch(RAW_LOAD, stream, version)
                await conn.execute(insert, *append.raw_row(stream, version + 1, EVENT_TYPE, i))
        return n

    try:
        count, elapsed = await append._measure(writers, per_writer, seconds, write)
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return count / elapsed


async def _kernel(
    runtime: ServiceRuntime, writers: int, per_writer: int, seconds: float, *, path: bool = True
) -> float:
    """`path`: whole commands (`meters.take`); otherwise only `EventStore.append` in a
    transaction, with an envelope built the kernel's way (the append benchmark's form)."""
    run = uuid.uuid4().hex[:8]

    async def write(w: int, n: int, deadline: float) -> int:
        for i in range(n):
            if time.perf_counter() > deadline:
                return i
            stream = f"meter-{run}-{w}-{i // EVENTS_PER_STREAM}"
            if path:
                await meters.take(runtime, stream, i)
                continue
            version = i % EVENTS_PER_STREAM
            event = runtime.registry.envelope(
                meters.ReadingTaken(reading=i),
                stream_id=stream,
                stream_version=version + 1,
                alliance_id=None,
                actor=meters.BENCH_ACTOR,
            )
            async with runtime.engine.begin() as conn:
                await runtime.store.append(conn, stream, version, [event])
        return n

    # Open the pool's connections before the clock starts (the raw side connects first too).
    async def touch() -> None:
        async with runtime.engine.connect():
            await asyncio.sleep(0.05)

    await asyncio.gather(*(touch() for _ in range(writers)))
    count, elapsed = await append._measure(writers, per_writer, seconds, write)
    return count / elapsed


async def _no_wake() -> None:
    pass


BASELINE = "raw BEGIN/INSERT/COMMIT"
FIGURE = "command path, relay elsewhere (wake: NOTIFY)"


async def _writers(
    dsn: str,
    elsewhere: ServiceRuntime,
    silent: ServiceRuntime,
    here: ServiceRuntime,
    writers: int,
    per_writer: int,
    seconds: float,
    rounds: int,
    ladder: bool,
) -> tuple[Figure, dict[str, float]]:
    half, short = max(1, per_writer // 2), seconds / 2
    # (name, full size?, measure), in ladder order: each adds one thing the command path
    # does. Each round measures every variant once; each keeps its best.
    variants: list[tuple[str, bool, Any]] = [
        (BASELINE, True, lambda n, s: append._raw(dsn, writers, n, s, explicit_tx=True)),
        (
            "+ kernel table (stream-order trigger)",
            False,
            lambda n, s: append._raw(dsn, writers, n, s, table=KERNEL_TABLE, explicit_tx=True),
        ),
        ("+ the stream load SELECT", False, lambda n, s: _raw_loaded(dsn, writers, n, s)),
        (
            "kernel EventStore.append alone (SQLAlchemy; no load, no wake)",
            False,
            lambda n, s: _kernel(elsewhere, writers, n, s, path=False),
        ),
        (
            "command path, wake left out (a measurement only)",
            False,
            lambda n, s: _kernel(silent, writers, n, s),
        ),
        (FIGURE, True, lambda n, s: _kernel(elsewhere, writers, n, s)),
        ("command path, relay in this process", False, lambda n, s: _kernel(here, writers, n, s)),
    ]
    if not ladder:
        variants = [v for v in variants if v[1]]
    rates: dict[str, list[float]] = {name: [] for name, *_ in variants}
    for _ in range(rounds):
        for name, full, measure in variants:
            n, cap = (per_writer, seconds) if full else (half, short)
            rates[name].append(await measure(n, cap))
    figure = Figure(
        key=f"command_{writers}w",
        label=f"7 command path, {writers} writer{'s' if writers > 1 else ''}",
        unit="commands/s",
        value=max(rates[FIGURE]),
        baseline=max(rates[BASELINE]),
        baseline_label="raw asyncpg BEGIN, single-row INSERT, COMMIT per command, same row shape",
        target=f">= {TARGET:.0%} of raw",
        check=ratio_at_least(TARGET),
        details={
            "writers": writers,
            "commands_per_writer_max": per_writer,
            "seconds_cap": seconds,
            "kernel_rounds": [round(r, 1) for r in rates[FIGURE]],
            "raw_rounds": [round(r, 1) for r in rates[BASELINE]],
        },
    )
    return figure, {name: max(found) for name, found in rates.items()}


async def run(
    stack: Stack,
    *,
    events: dict[int, int] | None = None,
    seconds: float = 6.0,
    rounds: int = 2,
    ladder: bool = True,
) -> tuple[list[Figure], dict[str, dict[str, float]]]:
    """One figure per concurrency (best of `rounds`, variants alternating), and a ladder of
    variants from raw to kernel that shows where a command's time goes."""
    events = events or {1: 3000, 8: 8000}
    await stack.create_database(DATABASE)
    await stack.empty_jetstream()
    dsn = stack.dsn(DATABASE)
    elsewhere = meters.meter_runtime(stack, DATABASE)  # never started: no relay here
    here = meters.meter_runtime(stack, DATABASE)
    # The same path without its wake, to show what the wake costs; nothing else uses it.
    silent = meters.meter_runtime(stack, DATABASE)
    silent.events_committed = _no_wake  # type: ignore[method-assign]
    await elsewhere.install()
    admin = await asyncpg.connect(dsn)
    try:
        for statement in append.RAW_DDL:
            await admin.execute(statement)
    finally:
        await admin.close()

    figures: list[Figure] = []
    steps: dict[str, dict[str, float]] = {}
    try:
        async with meters.relay_in_this_process(here):
            # Warm up every path (plans, pools, imports) before anything is timed.
            await append._raw(dsn, 1, 300, 2.0, explicit_tx=True)
            await _kernel(elsewhere, 1, 300, 2.0)
            await _kernel(here, 1, 100, 2.0)
            for writers, total in events.items():
                per_writer = max(1, total // writers)
                figure, found = await _writers(
                    dsn, elsewhere, silent, here, writers, per_writer, seconds, rounds, ladder
                )
                figures.append(figure)
                if ladder:
                    steps[f"{writers}w"] = found
    finally:
        for runtime in (elsewhere, silent, here):
            await runtime.engine.dispose()
    return figures, steps
