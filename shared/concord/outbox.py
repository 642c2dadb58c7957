"""The outbox relay: publishes each service's committed events to JetStream, in commit-safe
order, and records how far it got.

Events are the outbox: the command's transaction commits them once, and the relay reads them
back with `EventStore.read_committed`. The order of work is publish, wait for every ack, then
record the checkpoint. A crash before the checkpoint is saved republishes the batch on restart,
and JetStream drops the repeats by `Nats-Msg-Id`, so downstream sees each event exactly once.

Events committed after a transaction that is still open wait for it (the watermark is the
oldest open transaction in the cluster). While they wait the relay looks again with a
doubling delay, woken at once by the next commit, and says how long and for whom it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from concord.bus import Bus
from concord.db import keep_leading, notify_channel, woken_by_notify
from concord.eventstore import Checkpoint, EventStore, RecordedEvent, oldest_open_transaction
from concord.observability import RELAY_HELD_BACK, RELAY_LAG, RELAY_PUBLISHED

log = logging.getLogger(__name__)
# The first look again comes soon: usually the older transaction is a command about to commit.
FIRST_LOOK_AGAIN = 0.002
HELD_BACK_WARNING_EVERY = 60.0


class HeldBack:
    """How long the relay has waited for an older open transaction: a gauge, and a warning
    naming that transaction once the wait passes `warn_after` seconds, then once a minute."""

    def __init__(self, service: str, name: str, warn_after: float) -> None:
        self.service = service
        self.name = name
        self.warn_after = warn_after
        self.since: float | None = None
        self._warn_at = 0.0
        self._warned = False
        self.reset()

    async def still(self, conn: AsyncConnection) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since, self._warn_at = now, now + self.warn_after
        held = now - self.since
        RELAY_HELD_BACK.labels(self.service).set(held)
        if now < self._warn_at:
            return
        self._warn_at = now + max(HELD_BACK_WARNING_EVERY, self.warn_after)
        blocker = await oldest_open_transaction(conn)
        if blocker is not None:  # else it has just ended, and the next look publishes
            self._warned = True
            log.warning(
                "%s held back %.0f s by %s; events committed after it wait until it ends",
                self.name,
                held,
                blocker,
            )

    def over(self) -> None:
        if self.since is not None and self._warned:
            held = time.monotonic() - self.since
            log.info("%s no longer held back, after %.0f s", self.name, held)
        self.reset()

    def reset(self) -> None:
        self.since, self._warned = None, False
        RELAY_HELD_BACK.labels(self.service).set(0)


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        bus: Bus,
        *,
        service: str,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        held_back_warning_after: float = 10.0,
    ) -> None:
        self.engine = engine
        self.store = store
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        s = store.schema
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.is_leading = False
        # Pass numbers let `drained` wait for a pass that began after it was asked.
        self._passes = 0
        self._quiet_after = 0
        self._quiet = asyncio.Condition()
        self.held_back = HeldBack(service, f"relay:{store.schema}", held_back_warning_after)
        self._load_checkpoint = text(
            f"SELECT transaction_id, position FROM {s}.relay_checkpoint WHERE singleton"
        )
        self._save_checkpoint = text(
            f"""INSERT INTO {s}.relay_checkpoint (transaction_id, position) VALUES (:t, :p)
                ON CONFLICT (singleton) DO UPDATE
                SET transaction_id = excluded.transaction_id, position = excluded.position,
                    updated_at = now()"""
        )
        self._pending = text(
            f"""SELECT EXISTS (SELECT 1 FROM {s}.events
                WHERE (transaction_id, position) > (:transaction_id, :position))"""
        )

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run` (cancelling mid-query is not safe)."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Lead the relay for this service and publish until stopped; survives outages."""
        self._stop.clear()
        await keep_leading(
            self.engine,
            f"relay:{self.store.schema}",
            stop=self._stop,
            ready=self._ready,
            lead=self._lead,
            on_failure=self.bus.forget_streams,
        )

    async def _ready(self) -> bool:
        await self.bus.wait_connected()
        await self.bus.ensure_stream(self.service)
        return True

    async def _lead(self, conn: AsyncConnection) -> None:
        async with woken_by_notify(conn, notify_channel(self.store.schema), self._wake):
            self.is_leading = True
            try:
                await self._publish_while_leading(conn)
            finally:
                self.is_leading = False
                self.held_back.reset()  # another replica may lead now, and says its own

    async def _publish_while_leading(self, conn: AsyncConnection) -> None:
        checkpoint = await self.checkpoint(conn)
        look_again = FIRST_LOOK_AGAIN
        while not self._stop.is_set():
            self._wake.clear()
            self._passes += 1
            this_pass = self._passes
            checkpoint, published = await self.pass_once(conn, checkpoint)
            if published == self.batch_size:
                continue
            if published == 0 and await self._held_back(conn, checkpoint):
                # A later transaction committed but an older one is still open. It may be
                # left open for minutes: look again less and less often, up to the poll
                # interval, unless a commit (perhaps its own) wakes us first.
                await self.held_back.still(conn)
                wait, look_again = look_again, min(look_again * 2, self.poll_interval)
            else:
                self.held_back.over()
                wait, look_again = self.poll_interval, FIRST_LOOK_AGAIN
                async with self._quiet:
                    self._quiet_after = this_pass
                    self._quiet.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def checkpoint(self, conn: AsyncConnection) -> Checkpoint:
        row = (await conn.execute(self._load_checkpoint)).first()
        await conn.commit()
        return Checkpoint(row.transaction_id, row.position) if row else Checkpoint()

    async def read_batch(self, conn: AsyncConnection, after: Checkpoint) -> list[RecordedEvent]:
        batch = await self.store.read_committed(conn, after, self.batch_size)
        await conn.commit()  # end the snapshot so the next read sees newer commits
        return batch

    async def publish(self, batch: list[RecordedEvent]) -> None:
        await self.bus.publish_all([recorded.event for recorded in batch])

    async def record(self, conn: AsyncConnection, checkpoint: Checkpoint) -> None:
        await conn.execute(
            self._save_checkpoint, {"t": checkpoint.transaction_id, "p": checkpoint.position}
        )
        await conn.commit()

    async def pass_once(self, conn: AsyncConnection, after: Checkpoint) -> tuple[Checkpoint, int]:
        """Publish one batch after `after`; returns the new checkpoint and how many went out."""
        batch = await self.read_batch(conn, after)
        if not batch:
            return after, 0
        await self.publish(batch)
        checkpoint = batch[-1].checkpoint
        await self.record(conn, checkpoint)
        RELAY_PUBLISHED.labels(self.service).inc(len(batch))
        RELAY_LAG.labels(self.service).set(max(0.0, time.time() - batch[-1].event.time.timestamp()))
        return checkpoint, len(batch)

    async def _held_back(self, conn: AsyncConnection, after: Checkpoint) -> bool:
        result = await conn.execute(
            self._pending, {"transaction_id": after.transaction_id, "position": after.position}
        )
        pending = bool(result.scalar())
        await conn.commit()
        return pending

    async def drained(self, timeout: float = 5.0) -> bool:
        """Wait until the relay has published everything committed so far (graceful stop)."""
        target = self._passes + 1
        self.wake()
        try:
            async with asyncio.timeout(timeout), self._quiet:
                await self._quiet.wait_for(lambda: self._quiet_after >= target)
        except TimeoutError:
            return False
        return True
