"""A rebuild commits batch by batch, each batch with the checkpoint it reaches: it never holds
the commit-safe watermark (ADR 0001) for longer than a batch, so every relay publishes while
it runs, and a rebuild cut short leaves a read model that is true up to its checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nats.js import JetStreamContext
from sqlalchemy import text

from concord.bus import stream_name
from concord.projections import Projection, ReadModel
from concord.runtime import ServiceRuntime
from tests.integration.conftest import SERVICE, KernelTestSettings, new_stream, pulses, registry

BATCH = 10
TABLE = f"{SERVICE}.readings"


class ReadingLog(Projection):
    """One row per reading, written by whichever transaction applied it; it can be told to
    stop before a reading (between two of the rebuild's batches) until the test says go."""

    name = "reading_log"
    events = registry()
    subjects = (f"concord.{SERVICE}.pulse.>",)
    tables = (TABLE,)
    _insert = text(f"INSERT INTO {TABLE} (event_id, reading) VALUES (:id, :reading)")

    def __init__(self) -> None:
        self.stop_before: int | None = None
        self.stopped = asyncio.Event()
        self.go = asyncio.Event()

    async def apply(self, model: ReadModel, recorded: Any) -> None:
        if recorded.event.reading == self.stop_before:
            self.stopped.set()
            await self.go.wait()
        model.write(self._insert, {"id": recorded.id, "reading": recorded.event.reading})


@pytest.fixture
async def log_runtime(settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    """The kernel test service with its reading log, and its relay running."""
    runtime = ServiceRuntime(
        settings(KernelTestSettings, projection_rebuild_batch_size=BATCH),
        registry=registry(),
        projections=[ReadingLog()],
    )
    await runtime.install()
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(f"CREATE TABLE {TABLE} (event_id uuid PRIMARY KEY, reading int NOT NULL)")
        )
    await runtime.bus.connect()
    relay = asyncio.create_task(runtime.relay.run())
    yield runtime
    runtime.relay.stop()
    await asyncio.wait_for(relay, 10)
    await runtime.bus.close()
    await runtime.engine.dispose()


def reading_log(runtime: ServiceRuntime) -> ReadingLog:
    projection = runtime.runners["reading_log"].projection
    assert isinstance(projection, ReadingLog)
    return projection


async def record(runtime: ServiceRuntime, readings: range) -> None:
    for reading in readings:
        stream = new_stream()
        async with runtime.engine.begin() as conn:
            await runtime.store.append(conn, stream, 0, pulses(stream, [reading]))
        runtime.relay.wake()


async def published(js: JetStreamContext, count: int) -> None:
    async with asyncio.timeout(10):
        while (await js.stream_info(stream_name(SERVICE))).state.messages < count:
            await asyncio.sleep(0.02)


async def logged(runtime: ServiceRuntime) -> tuple[list[int], int]:
    """The readings in the log, and the checkpoint stored with them."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT reading FROM {TABLE} ORDER BY reading"))
        readings = list(rows.scalars())
        await conn.commit()
        return readings, await runtime.runners["reading_log"].checkpoint(conn)


async def rows_per_transaction(runtime: ServiceRuntime) -> list[int]:
    async with runtime.engine.connect() as conn:
        counts = await conn.execute(text(f"SELECT count(*) FROM {TABLE} GROUP BY xmin::text"))
        return sorted(counts.scalars())


@contextlib.asynccontextmanager
async def rebuilding(runtime: ServiceRuntime, stop_before: int) -> AsyncIterator[asyncio.Task[Any]]:
    """A rebuild, stopped between two batches (before `stop_before`) while inside."""
    log = reading_log(runtime)
    log.stop_before, log.go = stop_before, asyncio.Event()
    task = asyncio.create_task(runtime.runners["reading_log"].rebuild(progress=False, wait=10))
    try:
        await asyncio.wait_for(log.stopped.wait(), 10)
        yield task
    finally:
        log.stop_before = None
        log.go.set()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_relay_publishes_while_a_rebuild_runs_and_each_batch_commits_apart(
    log_runtime: ServiceRuntime, js: JetStreamContext
) -> None:
    await record(log_runtime, range(1, 26))
    await published(js, 25)

    async with rebuilding(log_runtime, stop_before=2 * BATCH + 1) as rebuild:
        await record(log_runtime, range(26, 27))  # another stream, committed mid-rebuild
        await published(js, 26)  # not held back behind the rebuild
        readings, checkpoint = await logged(log_runtime)
        assert checkpoint >= BATCH  # what is in is committed, with a checkpoint that says so
        assert readings == list(range(1, checkpoint + 1))
        reading_log(log_runtime).go.set()
        report = await asyncio.wait_for(rebuild, 10)

    readings, checkpoint = await logged(log_runtime)
    assert checkpoint >= 25  # reading 26 too if it was in the stream when the last batch came
    assert readings == list(range(1, checkpoint + 1))
    assert report.events == checkpoint
    per_transaction = await rows_per_transaction(log_runtime)
    assert max(per_transaction) <= BATCH and len(per_transaction) >= 3, per_transaction


async def test_a_rebuild_cut_short_leaves_a_true_read_model_that_the_live_runner_completes(
    log_runtime: ServiceRuntime, js: JetStreamContext
) -> None:
    await record(log_runtime, range(1, 26))
    await published(js, 25)
    runner = log_runtime.runners["reading_log"]
    await runner.rebuild(progress=False)
    assert await logged(log_runtime) == (list(range(1, 26)), 25)

    async with rebuilding(log_runtime, stop_before=2 * BATCH + 1) as rebuild:
        rebuild.cancel()  # the rebuild dies between batches, as if killed
    readings, checkpoint = await logged(log_runtime)
    assert BATCH <= checkpoint <= 2 * BATCH  # the batches it committed, and no more
    assert readings == list(range(1, checkpoint + 1))

    live = asyncio.create_task(runner.run())  # the live runner carries on from there
    try:
        async with asyncio.timeout(10):
            while (await logged(log_runtime))[1] < 25:
                await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await asyncio.wait_for(live, 10)
    assert await logged(log_runtime) == (list(range(1, 26)), 25)

    await runner.rebuild(progress=False)  # or a rebuild run again starts over
    assert await logged(log_runtime) == (list(range(1, 26)), 25)
