"""Rebuilding a projection: empty its tables, then replay its source stream into them batch
by batch, each batch committed with the checkpoint it reaches.

The replay reads the JetStream stream, as the live runner does: the source is often another
service's, whose event store this service never reads.

Why batches: a transaction that writes holds an xid, and every relay on the cluster waits
for the oldest open xid (ADR 0001), so a replay in one transaction held back every service's
events for as long as it ran. Committed batch by batch, the read model is at every moment
the replay of its stream up to its checkpoint: a rebuild that dies leaves a projection that
is behind, never wrong, and the live runner carries on from its checkpoint (or a new rebuild
starts over). The live runner stays off meanwhile, because the rebuild holds its leadership
lock; readers see the model refill from empty, as they would a new projection's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from tqdm import tqdm

from concord.bus import stream_name
from concord.db import leadership
from concord.projections import ReadModel, arrivals

if TYPE_CHECKING:
    from concord.projections import ProjectionRunner


@dataclass(frozen=True)
class RebuildReport:
    projection: str
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")


async def rebuild(
    runner: ProjectionRunner, *, progress: bool = True, wait: float | None = None
) -> RebuildReport:
    """Take the projection from its live runner and replay it.

    A live leader of this projection (any replica) sees the pause within a second and lets
    go; once the rebuild leads, the pause is lifted and the live runner queues for
    leadership, resuming from the checkpoint the rebuild leaves when it is done (or dies).
    """
    name = runner.projection.name
    seconds = 60.0 if wait is None else wait
    async with runner.engine.begin() as conn:
        await conn.execute(runner._set_paused, {"p": name, "seconds": seconds})
    try:
        async with leadership(runner.engine, runner.lock_name, retry_every=0.2, wait=wait) as conn:
            await _unpause(runner)
            return await _replay(runner, conn, progress)
    finally:
        await _unpause(runner)


async def _unpause(runner: ProjectionRunner) -> None:
    async with runner.engine.begin() as conn:
        await conn.execute(runner._unset_paused, {"p": runner.projection.name})


async def _replay(runner: ProjectionRunner, conn: AsyncConnection, progress: bool) -> RebuildReport:
    projection = runner.projection
    await runner.bus.ensure_stream(projection.source)
    js = runner.bus.js
    stream = stream_name(projection.source)
    replay = await js.pull_subscribe(
        "",
        stream=stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            filter_subjects=list(projection.subjects),
            inactive_threshold=60,
        ),
    )
    started = time.perf_counter()
    pending = (await replay.consumer_info()).num_pending or 0
    bar = tqdm(desc=f"rebuild {projection.name}", total=pending, unit="ev", disable=not progress)
    try:
        await _empty(runner, conn)
        count = await _apply_all(runner, conn, replay, pending, bar)
    finally:
        bar.close()
        with contextlib.suppress(Exception):
            await replay.unsubscribe()
    # The durable consumer may be past the new checkpoint; the next run re-creates it.
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, runner.durable)
    runner._announce()
    return RebuildReport(projection.name, count, time.perf_counter() - started)


async def _empty(runner: ProjectionRunner, conn: AsyncConnection) -> None:
    """The tables emptied and the checkpoint at the start, together: nothing applied yet."""
    async with conn.begin():
        for table in runner.projection.tables:
            await conn.execute(text(f"TRUNCATE {table}"))
        await runner.intake.forget(conn)
        await conn.execute(runner._write_checkpoint, {"p": runner.projection.name, "seq": 0})


async def _apply_all(
    runner: ProjectionRunner,
    conn: AsyncConnection,
    replay: JetStreamContext.PullSubscription,
    pending: int,
    bar: tqdm[Any],
) -> int:
    """Replay until nothing is pending, fetching the next batch from NATS while this one is
    written to PostgreSQL; returns how many events were applied."""
    count = 0
    size = runner.rebuild_batch_size
    fetching = asyncio.ensure_future(replay.fetch(size, timeout=5))
    try:
        while pending:
            try:
                msgs = await fetching
            except TimeoutError:
                msgs = []  # slow, not finished: num_pending says what is left
            pending = msgs[-1].metadata.num_pending if msgs else pending
            if pending:
                fetching = asyncio.ensure_future(replay.fetch(size, timeout=5))
            count += await _apply_batch(runner, conn, msgs)
            bar.total = bar.n + len(msgs) + pending
            bar.update(len(msgs))
    finally:
        if not fetching.done():
            fetching.cancel()
    return count


async def _apply_batch(runner: ProjectionRunner, conn: AsyncConnection, msgs: Sequence[Msg]) -> int:
    """One batch and the checkpoint it reaches, in one transaction. The checkpoint row is
    not locked (the rebuild leads, nobody else writes it), so the transaction holds an xid
    only from its first write to its commit."""
    if not msgs:
        return 0
    async with conn.begin():
        model = ReadModel(conn)
        applied = len((await runner.intake.take(model, arrivals(msgs))).applied)
        await model.flush()
        checkpoint = msgs[-1].metadata.sequence.stream
        await conn.execute(
            runner._write_checkpoint, {"p": runner.projection.name, "seq": checkpoint}
        )
    return applied
