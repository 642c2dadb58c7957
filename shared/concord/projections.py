"""Projections: read models kept current from events on JetStream.

A runner leads one projection (advisory lock), pulls batches from a durable consumer and
applies each batch and its checkpoint (the last stream sequence applied) in one transaction,
then acks. A redelivered message is at or below the checkpoint and changes nothing.
PostgreSQL's checkpoint is the truth; the consumer is only a cursor, re-created from the
checkpoint whenever it is ahead of it (after a rebuild, or a restore).
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
from pydantic import ValidationError
from sqlalchemy import Executable, Result, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from concord.bus import Bus
from concord.db import checked_schema, keep_leading
from concord.events import CloudEvent, EventRegistry, Recorded
from concord.observability import PROJECTION_APPLIED, PROJECTION_LAG, PROJECTION_PENDING

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
                SET last_sequence = excluded.last_sequence, updated_at = now()"""
        )
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
        """Connected, the source stream exists, and no rebuild holds the projection."""
        await self.bus.wait_connected()
        await self.bus.ensure_stream(self.projection.source)
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
                await self.apply_batch(conn, msgs)
                for msg in msgs:
                    await msg.ack()
                self._announce()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def apply_batch(self, conn: AsyncConnection, msgs: Sequence[Msg]) -> int:
        """Apply the messages above the checkpoint and move it, all in one transaction."""
        applied = 0
        async with conn.begin():
            checkpoint = await self._locked_checkpoint(conn)
            last: CloudEvent | None = None
            model = ReadModel(conn)
            for msg in msgs:
                sequence = msg.metadata.sequence.stream
                if sequence <= checkpoint:
                    continue  # redelivered: already applied
                event = await self._apply(model, msg)
                if event is not None:
                    last = event
                    applied += 1
                checkpoint = sequence
            await model.flush()
            await conn.execute(
                self._write_checkpoint, {"p": self.projection.name, "seq": checkpoint}
            )
        labels = (self.service, self.projection.name)
        PROJECTION_APPLIED.labels(*labels).inc(applied)
        if msgs:
            PROJECTION_PENDING.labels(*labels).set(msgs[-1].metadata.num_pending)
        if last is not None:
            PROJECTION_LAG.labels(*labels).set(max(0.0, time.time() - last.time.timestamp()))
        return applied

    async def _apply(self, model: ReadModel, msg: Msg) -> CloudEvent | None:
        """Apply one message, typed and upcast; the envelope if it was a Concord event."""
        try:
            event = CloudEvent.from_json(msg.data)
        except ValidationError:
            # Not a Concord event: nothing to project. Skipping keeps the projection alive.
            log.error("projection %s skipped a malformed message on %s", self.durable, msg.subject)
            return None
        if self.projection.events.knows(event):
            await self.projection.apply(model, self.projection.events.recorded(event))
        else:
            await self.projection.apply_other(model, event)
        return event

    async def _paused(self, conn: AsyncConnection) -> bool:
        paused = (await conn.execute(self._is_paused, {"p": self.projection.name})).scalar()
        await conn.commit()
        return bool(paused)

    async def rebuild(self, *, progress: bool = True, wait: float | None = None) -> RebuildReport:
        """Empty the read model and replay the source stream into it, batch by batch
        (`concord.rebuild`)."""
        from concord.rebuild import rebuild

        return await rebuild(self, progress=progress, wait=wait)
