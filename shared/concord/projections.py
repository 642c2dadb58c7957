"""Projections: read models kept current from events on JetStream.

A runner leads one projection (advisory lock), pulls batches from a durable consumer and
applies each batch and its checkpoint (the last stream sequence applied) in one transaction,
then acks. A redelivered message is at or below the checkpoint and changes nothing.
PostgreSQL's checkpoint is the truth; the consumer is only a cursor, re-created from the
checkpoint whenever it is ahead of it (after a rebuild, or a restore).

What a batch takes in is checked by its `Intake` (`concord.intake`): each stream's events in
version order, anything unreadable, foreign or invalid parked. Only a valid event whose
`apply` fails stops the projection, recorded with the message it stopped at (`/ops/parked`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from sqlalchemy import Executable, Result, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from concord.bus import Bus
from concord.db import checked_schema, keep_leading
from concord.events import CloudEvent, EventRegistry, Recorded
from concord.intake import Arrival, Intake, Outcome, ParkedMessages
from concord.observability import (
    PROJECTION_APPLIED,
    PROJECTION_LAG,
    PROJECTION_PENDING,
    WORK_PARKED,
)

if TYPE_CHECKING:
    from concord.rebuild import RebuildReport

log = logging.getLogger(__name__)


class ReadModel:
    """What a projection writes through while it applies a batch of events.

    Writes are buffered and sent as runs: consecutive writes of the same statement go out
    as one executemany (pipelined by asyncpg), which is what makes rebuilds fast. A read
    sends the buffered writes first, so it sees every earlier event's effect.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._runs: list[tuple[Executable, list[dict[str, Any]]]] = []

    def write(self, statement: Executable, params: dict[str, Any]) -> None:
        if self._runs and self._runs[-1][0] is statement:
            self._runs[-1][1].append(params)
        else:
            self._runs.append((statement, [params]))

    async def read(self, statement: Executable, params: dict[str, Any]) -> Result[Any]:
        await self.flush()
        return await self.conn.execute(statement, params)

    async def flush(self) -> None:
        runs, self._runs = self._runs, []
        for statement, rows in runs:
            await self.conn.execute(statement, rows if len(rows) > 1 else rows[0])


class Projection(ABC):
    """A read model: its tables, the events it follows, and how each event changes it.

    `apply` receives each event typed and upcast to the version the code speaks today, with
    its envelope. It must be deterministic (use the event's time, never now()) so that a
    rebuild produces the same rows byte for byte.
    """

    name: str
    events: EventRegistry  # the events of the service whose stream it follows
    subjects: Sequence[str]
    # Schema-qualified; emptied on rebuild. Declared as `Table`s and made by migrations.
    tables: Sequence[str]

    @property
    def source(self) -> str:
        return self.events.service

    @abstractmethod
    async def apply(self, model: ReadModel, recorded: Recorded[Any]) -> None: ...

    async def apply_other(self, model: ReadModel, event: CloudEvent) -> None:
        """An event on its subjects that `events` does not know (a newer producer's type):
        skipped, unless the read model must still see that the stream moved on."""
        return None


class ProjectionRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: Bus,
        projection: Projection,
        *,
        service: str,
        schema: str,
        batch_size: int = 256,
        rebuild_batch_size: int = 1000,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.projection = projection
        self.service = service
        self.schema = checked_schema(schema)
        self.batch_size = batch_size
        self.rebuild_batch_size = rebuild_batch_size
        self.durable = f"{service}__{projection.name}"
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        s = self.schema
        self._read_checkpoint = text(
            f"SELECT last_sequence FROM {s}.projection_checkpoints WHERE projection = :p FOR UPDATE"
        )
        self._write_checkpoint = text(
            f"""INSERT INTO {s}.projection_checkpoints (projection, last_sequence)
                VALUES (:p, :seq) ON CONFLICT (projection) DO UPDATE
                SET last_sequence = excluded.last_sequence, updated_at = now(),
                    stopped_sequence = NULL, stopped_error = NULL, stopped_since = NULL"""
        )
        self._stopped = text(
            f"""INSERT INTO {s}.projection_checkpoints (projection, last_sequence,
                    stopped_sequence, stopped_error, stopped_since)
                VALUES (:p, 0, :seq, :error, now()) ON CONFLICT (projection) DO UPDATE
                SET stopped_sequence = excluded.stopped_sequence,
                    stopped_error = excluded.stopped_error,
                    stopped_since = CASE
                        WHEN projection_checkpoints.stopped_sequence = excluded.stopped_sequence
                        THEN projection_checkpoints.stopped_since ELSE now() END"""
        )
        self.intake = Intake(s, projection, service=service)
        self._parked = ParkedMessages(s)
        # A pause is a lease, so a rebuild killed while it waits cannot pause for ever.
        self._set_paused = text(
            f"""INSERT INTO {s}.projection_checkpoints (projection, last_sequence, paused_until)
                VALUES (:p, 0, now() + make_interval(secs => :seconds))
                ON CONFLICT (projection) DO UPDATE
                SET paused_until = excluded.paused_until, updated_at = now()"""
        )
        self._unset_paused = text(
            f"""UPDATE {s}.projection_checkpoints SET paused_until = NULL, updated_at = now()
                WHERE projection = :p"""
        )
        self._is_paused = text(
            f"""SELECT coalesce(paused_until > now(), false)
                FROM {s}.projection_checkpoints WHERE projection = :p"""
        )

    @property
    def lock_name(self) -> str:
        return f"projection:{self.schema}:{self.projection.name}"

    async def changed(self) -> None:
        """Resolves the next time this runner commits a batch (read-your-writes waits)."""
        await self._changed.wait()

    def _announce(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run` within about a second."""
        self._stop.set()

    async def run(self) -> None:
        self._stop.clear()
        await keep_leading(
            self.engine,
            self.lock_name,
            stop=self._stop,
            ready=self._ready,
            lead=self._follow,
            on_failure=self.bus.forget_streams,
        )

    async def _ready(self) -> bool:
        """Connected, the source stream exists (its owner made it), and no rebuild holds the
        projection."""
        await self.bus.wait_connected()
        if not await self.bus.ensure_stream(self.projection.source):
            return False
        async with self.engine.connect() as conn:
            return not await self._paused(conn)

    async def checkpoint(self, conn: AsyncConnection) -> int:
        async with conn.begin():
            return await self._locked_checkpoint(conn)

    async def _locked_checkpoint(self, conn: AsyncConnection) -> int:
        row = (await conn.execute(self._read_checkpoint, {"p": self.projection.name})).first()
        return int(row.last_sequence) if row else 0

    async def _follow(self, conn: AsyncConnection) -> None:
        sub = await self.bus.durable(
            self.projection.source,
            self.durable,
            self.projection.subjects,
            after=await self.checkpoint(conn),
            max_ack_pending=self.batch_size * 4,
        )
        next_pause_check = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_pause_check:
                    if await self._paused(conn):
                        log.info("projection %s paused for a rebuild", self.durable)
                        return  # lets go of leadership so the rebuild can take it
                    next_pause_check = time.monotonic() + 1.0
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=1)
                except TimeoutError:
                    PROJECTION_PENDING.labels(self.service, self.projection.name).set(0)
                    continue
                try:
                    await self.apply_batch(conn, msgs)
                except Exception:
                    await self._apply_each_or_stop(conn, msgs)
                for msg in msgs:
                    await msg.ack()
                self._announce()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def apply_batch(self, conn: AsyncConnection, msgs: Sequence[Msg]) -> int:
        """Apply the messages above the checkpoint and move it, all in one transaction."""
        async with conn.begin():
            checkpoint = await self._locked_checkpoint(conn)
            fresh = [m for m in msgs if m.metadata.sequence.stream > checkpoint]
            model = ReadModel(conn)
            taken = await self.intake.take(model, arrivals(fresh))
            await model.flush()
            if fresh:
                checkpoint = fresh[-1].metadata.sequence.stream
            await conn.execute(
                self._write_checkpoint, {"p": self.projection.name, "seq": checkpoint}
            )
        labels = (self.service, self.projection.name)
        PROJECTION_APPLIED.labels(*labels).inc(len(taken.applied))
        if msgs:
            PROJECTION_PENDING.labels(*labels).set(msgs[-1].metadata.num_pending)
        if taken.applied:
            last = taken.applied[-1].time.timestamp()
            PROJECTION_LAG.labels(*labels).set(max(0.0, time.time() - last))
        if taken.parked_changed:
            await self.count_parked()
        return len(taken.applied)

    async def _apply_each_or_stop(self, conn: AsyncConnection, msgs: Sequence[Msg]) -> None:
        """A batch failed: apply its messages one at a time, so the projection stops exactly
        at the one whose `apply` fails, and says so (`/ops/parked`) until it is fixed."""
        for msg in msgs:
            try:
                await self.apply_batch(conn, [msg])
            except Exception as error:
                sequence = msg.metadata.sequence.stream
                cause = f"{msg.subject}: {type(error).__name__}: {error}"[:2000]
                log.error(
                    "projection %s stopped at message %s, %s; it retries it until fixed",
                    self.durable,
                    sequence,
                    cause,
                )
                with contextlib.suppress(Exception):
                    async with self.engine.begin() as other:
                        params = {"p": self.projection.name, "seq": sequence, "error": cause}
                        await other.execute(self._stopped, params)
                raise

    async def settle(self, sequence: int, *, drop: bool) -> tuple[Outcome, str | None] | None:
        """An operator's replay (or drop) of a parked message, between two batches."""
        async with self.engine.begin() as conn:
            await self._locked_checkpoint(conn)
            model = ReadModel(conn)
            outcome = await self.intake.settle(model, sequence, drop=drop)
            await model.flush()
        if outcome is not None:
            self._announce()
            await self.count_parked()
        return outcome

    async def count_parked(self) -> int:
        async with self.engine.connect() as conn:
            count = int((await conn.execute(self._parked.count)).scalar_one())
        WORK_PARKED.labels(self.service, "projection").set(count)
        return count

    async def _paused(self, conn: AsyncConnection) -> bool:
        paused = (await conn.execute(self._is_paused, {"p": self.projection.name})).scalar()
        await conn.commit()
        return bool(paused)

    async def rebuild(self, *, progress: bool = True, wait: float | None = None) -> RebuildReport:
        """Empty the read model and replay the source stream into it, batch by batch
        (`concord.rebuild`)."""
        from concord.rebuild import rebuild

        return await rebuild(self, progress=progress, wait=wait)


def arrivals(msgs: Sequence[Msg]) -> list[Arrival]:
    return [Arrival(m.metadata.sequence.stream, m.subject, m.data) for m in msgs]
