"""The event store: optimistic concurrency per stream, and a global read order that never
skips an event whose transaction commits after one with a higher position."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import text

from concord.eventstore import Checkpoint, StreamConflict
from concord.runtime import ServiceRuntime
from tests.integration.conftest import ids, new_stream, pulses


async def test_a_stream_reads_back_what_was_appended(runtime: ServiceRuntime) -> None:
    stream = new_stream()
    written = pulses(stream, range(3))
    async with runtime.engine.begin() as conn:
        assert await runtime.store.append(conn, stream, 0, written) == 3
    async with runtime.engine.connect() as conn:
        assert await runtime.store.load(conn, stream) == written
        assert await runtime.store.version(conn, stream) == 3


async def test_a_writer_with_a_stale_version_is_refused_and_writes_nothing(
    runtime: ServiceRuntime,
) -> None:
    stream = new_stream()
    async with runtime.engine.begin() as conn:
        await runtime.store.append(conn, stream, 0, pulses(stream, range(2)))
    stale = pulses(stream, [99], start_version=1)  # written as if the stream were at version 1
    with pytest.raises(StreamConflict):
        async with runtime.engine.begin() as conn:
            await runtime.store.append(conn, stream, 1, stale)
    async with runtime.engine.connect() as conn:
        assert [e.data["reading"] for e in await runtime.store.load(conn, stream)] == [0, 1]


async def test_concurrent_writers_at_the_same_version_never_lose_an_update(
    runtime: ServiceRuntime,
) -> None:
    stream = new_stream()

    async def write(reading: int) -> bool:
        try:
            async with runtime.engine.begin() as conn:
                await runtime.store.append(conn, stream, 0, pulses(stream, [reading]))
                await asyncio.sleep(0.05)  # both are inside their transactions now
            return True
        except StreamConflict:
            return False

    outcomes = await asyncio.gather(*(write(r) for r in range(5)))
    assert outcomes.count(True) == 1
    async with runtime.engine.connect() as conn:
        assert await runtime.store.version(conn, stream) == 1


async def _read_all(runtime: ServiceRuntime, after: Checkpoint) -> tuple[list, Checkpoint]:
    async with runtime.engine.connect() as conn:
        batch = await runtime.store.read_committed(conn, after, 10_000)
    return [r.event for r in batch], (batch[-1].checkpoint if batch else after)


async def test_a_late_commit_below_a_seen_position_is_not_skipped(runtime: ServiceRuntime) -> None:
    """The trap: T1 takes position 1 and commits late; T2 takes position 2 and commits first.
    A reader trusting 'everything below the highest visible position' would pass position 1
    by for ever. The commit-safe reader holds back until T1 ends, then delivers both."""
    early, late = new_stream(), new_stream()
    t1_events, t2_events = pulses(early, [1]), pulses(late, [2])
    async with runtime.engine.connect() as t1, runtime.engine.connect() as t2:
        await t1.begin()
        await runtime.store.append(t1, early, 0, t1_events)  # position 1, uncommitted
        await t2.begin()
        await runtime.store.append(t2, late, 0, t2_events)  # position 2
        await t2.commit()

        # The naive reader sees position 2 and would move its checkpoint past position 1.
        async with runtime.engine.connect() as naive:
            visible = (
                (await naive.execute(text(f"SELECT position FROM {runtime.schema}.events")))
                .scalars()
                .all()
            )
        assert visible == [2]

        seen, checkpoint = await _read_all(runtime, Checkpoint())
        assert seen == []  # held back: an older transaction is still open
        await t1.commit()

    seen, checkpoint = await _read_all(runtime, checkpoint)
    assert ids(seen) == ids(t1_events + t2_events)


async def test_the_reader_never_skips_under_many_interleaved_delayed_commits(
    runtime: ServiceRuntime,
) -> None:
    """8 writers commit in random order with random delays while a reader tails the store
    by checkpoint. It must see every committed event exactly once."""
    rng = random.Random(7)
    written: list = []
    writers_done = asyncio.Event()

    async def writer(n: int) -> None:
        for i in range(25):
            stream = new_stream()
            events = pulses(stream, [n * 1000 + i])
            async with runtime.engine.begin() as conn:
                await runtime.store.append(conn, stream, 0, events)
                await asyncio.sleep(rng.random() * 0.01)  # hold the transaction open a while
            written.extend(events)

    seen: list = []

    async def reader() -> None:
        checkpoint = Checkpoint()
        while True:
            done = writers_done.is_set()
            batch, checkpoint = await _read_all(runtime, checkpoint)
            seen.extend(batch)
            if done and not batch:
                return
            await asyncio.sleep(0.001)

    tail = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(8)))
    writers_done.set()
    await tail
    assert len(seen) == len(written) == 200
    assert set(ids(seen)) == set(ids(written))


async def test_a_stream_is_read_in_version_order_even_when_its_writer_began_first(
    runtime: ServiceRuntime,
) -> None:
    """T1 writes something else first (an idempotency key), so it holds the older transaction
    id; T2 then appends version 1 and commits; T1 reads the stream, sees version 1 and
    appends version 2. Reading by transaction id would put version 2 before version 1, so
    the store refuses T1's append and its command retries in a fresh transaction."""
    stream = new_stream()
    async with runtime.engine.connect() as t1:
        await t1.begin()
        await t1.execute(
            text(
                f"""INSERT INTO {runtime.schema}.idempotency_keys (caller, key, request_hash)
                    VALUES ('acme/alice', 'k1', 'h')"""
            )
        )
        async with runtime.engine.begin() as t2:
            await runtime.store.append(t2, stream, 0, pulses(stream, [1]))
        assert await runtime.store.version(t1, stream) == 1
        with pytest.raises(StreamConflict):
            await runtime.store.append(t1, stream, 1, pulses(stream, [2], start_version=1))
        await t1.rollback()

    async with runtime.engine.begin() as retry:
        await runtime.store.append(retry, stream, 1, pulses(stream, [2], start_version=1))
    seen, _ = await _read_all(runtime, Checkpoint())
    assert [e.streamversion for e in seen] == [1, 2]
