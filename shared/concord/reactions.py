"""Reactions (policies): "when event T arrives from service X, run this", where "this"
issues commands on the service's own streams.

A runner leads each reaction (advisory lock) and follows a durable JetStream consumer, one
event at a time, in stream order. Each event is handled in one command transaction that
also moves the reaction's checkpoint (the stream sequence), so the events its commands
append and the fact that it reacted commit together: a redelivery, or a crash between the
commit and the ack, finds the checkpoint past the event and appends nothing twice.

A handler that fails is retried with back-off (its attempts survive a restart); after
`work_max_attempts` the event is parked with its error, the checkpoint moves past it so the
events behind it flow again, and an operator can retry it (`concord parked`, `/ops/parked`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from concord import commands
from concord.db import checked_schema, keep_leading
from concord.domain import Actor
from concord.events import CloudEvent, EventRegistry, Recorded
from concord.intake import Arrival, SetAside, read
from concord.observability import REACTION_HANDLED

if TYPE_CHECKING:
    from concord.runtime import ServiceRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reaction:
    """`handle` runs in the command transaction of each event of `subjects` that `events`
    (the source service's published events) can read."""

    name: str
    events: EventRegistry
    subjects: Sequence[str]
    handle: Callable[[commands.Transaction, Recorded[Any]], Awaitable[None]]

    @property
    def source(self) -> str:
        return self.events.service


class ReactionBook:
    """A service's reaction checkpoints and failures (parked when they keep failing)."""

    def __init__(self, schema: str) -> None:
        s = checked_schema(schema)
        self.checkpoint = text(
            f"""SELECT last_sequence FROM {s}.reaction_checkpoints WHERE reaction = :reaction
                FOR UPDATE"""
        )
        advance = f"""INSERT INTO {s}.reaction_checkpoints (reaction, last_sequence)
                VALUES (:reaction, :sequence) ON CONFLICT (reaction) DO UPDATE
                SET last_sequence = greatest(reaction_checkpoints.last_sequence,
                                             excluded.last_sequence), updated_at = now()"""
        self.advance = text(advance)
        # Handled: past it, and any failed attempts at it forgotten, in one round trip.
        self.handled = text(
            f"""WITH forgotten AS (DELETE FROM {s}.reaction_failures
                    WHERE reaction = :reaction AND sequence = :sequence)
                {advance}"""
        )
        self.failed = text(
            f"""INSERT INTO {s}.reaction_failures
                    (reaction, sequence, event_id, event_type, envelope, attempts, error)
                VALUES (:reaction, :sequence, :event_id, :event_type, :envelope, 1, :error)
                ON CONFLICT (reaction, sequence) DO UPDATE
                SET attempts = reaction_failures.attempts + 1, error = excluded.error,
                    last_failed_at = now()
                RETURNING attempts"""
        ).bindparams(bindparam("envelope", type_=JSONB))
        self.park = text(
            f"""UPDATE {s}.reaction_failures SET parked_at = now()
                WHERE reaction = :reaction AND sequence = :sequence"""
        )
        self.forget = text(
            f"DELETE FROM {s}.reaction_failures WHERE reaction = :reaction AND sequence = :sequence"
        )
        self.attempts = text(
            f"""SELECT attempts FROM {s}.reaction_failures
                WHERE reaction = :reaction AND sequence = :sequence"""
        )
        self.parked = text(
            f"""SELECT reaction, sequence, event_id, event_type, attempts, error, parked_at
                FROM {s}.reaction_failures WHERE parked_at IS NOT NULL
                ORDER BY parked_at, reaction, sequence"""
        )
        self.claim_parked = text(
            f"""SELECT envelope FROM {s}.reaction_failures
                WHERE reaction = :reaction AND sequence = :sequence AND parked_at IS NOT NULL
                FOR UPDATE"""
        ).columns(envelope=JSONB)
        self.count_parked = text(
            f"SELECT count(*) FROM {s}.reaction_failures WHERE parked_at IS NOT NULL"
        )


class ReactionRunner:
    def __init__(self, runtime: ServiceRuntime, reaction: Reaction) -> None:
        self.runtime = runtime
        self.reaction = reaction
        self.book = runtime.reaction_book
        self.durable = f"{runtime.service}__reaction__{reaction.name}"
        self.lock_name = f"reaction:{runtime.schema}:{reaction.name}"
        self._stop = asyncio.Event()
        self.actor = Actor.system(f"{runtime.service}/reaction/{reaction.name}")

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self._stop.clear()
        bus = self.runtime.bus
        await keep_leading(
            self.runtime.engine,
            self.lock_name,
            stop=self._stop,
            ready=self._ready,
            lead=self._follow,
            on_failure=bus.forget_streams,
        )

    async def _ready(self) -> bool:
        await self.runtime.bus.wait_connected()
        return await self.runtime.bus.ensure_stream(self.reaction.source)

    async def checkpoint(self) -> int:
        async with self.runtime.engine.begin() as conn:
            return await self._checkpoint(conn)

    async def _checkpoint(self, conn: AsyncConnection) -> int:
        row = (await conn.execute(self.book.checkpoint, {"reaction": self.reaction.name})).first()
        return int(row.last_sequence) if row else 0

    async def _follow(self, _: AsyncConnection) -> None:
        bus = self.runtime.bus
        sub = await bus.durable(
            self.reaction.source,
            self.durable,
            self.reaction.subjects,
            after=await self.checkpoint(),
            max_ack_pending=self.runtime.settings.reaction_batch_size,
        )
        try:
            while not self._stop.is_set():
                try:
                    msgs = await sub.fetch(self.runtime.settings.reaction_batch_size, timeout=1)
                except TimeoutError:
                    continue
                for msg in msgs:
                    if self._stop.is_set():
                        return  # unacked: redelivered to whoever leads next
                    await self.handle_message(msg)
                    await msg.ack()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle_message(self, msg: Msg) -> None:
        """Handle one delivered event until it is handled or parked. A message that is not
        its source's event (unreadable, foreign: no relay published it) is parked at once."""
        sequence = msg.metadata.sequence.stream
        settings = self.runtime.settings
        checked = read(Arrival(sequence, msg.subject, msg.data), self.reaction.source)
        if isinstance(checked, SetAside):
            await self._failed(sequence, msg.data, ValueError(f"{checked.reason}: {checked.error}"))
            await self._park(sequence)
            return
        while True:
            try:
                await self.handle(sequence, msg.data)
                return
            except Exception as error:
                attempts = await self._failed(sequence, msg.data, error)
                if attempts >= settings.work_max_attempts:
                    await self._park(sequence)
                    return
                delay = settings.work_retry_delay * 2 ** (attempts - 1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    raise

    async def handle(self, sequence: int, raw: bytes) -> bool:
        """Handle the event at `sequence` exactly once in effect; False if already handled."""
        envelope = CloudEvent.from_json(raw)
        recorded = self.reaction.events.recorded(envelope)
        params = {"reaction": self.reaction.name, "sequence": sequence}

        async def work(tx: commands.Transaction) -> bool:
            if sequence <= await self._checkpoint(tx.conn):
                return False  # redelivered: already handled
            await self.reaction.handle(tx, recorded)
            await tx.conn.execute(self.book.handled, params)
            return True

        context = commands.CommandContext.of_event(self.actor, envelope, self.runtime.clock)
        handled = await commands.transaction(self.runtime, context, work)
        if handled:
            REACTION_HANDLED.labels(self.runtime.service, self.reaction.name).inc()
        return handled

    async def _failed(self, sequence: int, raw: bytes, error: Exception) -> int:
        log.warning("reaction %s failed on event %s: %s", self.reaction.name, sequence, error)
        try:
            envelope: dict[str, Any] = CloudEvent.from_json(raw).model_dump(mode="json")
        except ValueError:
            # JSONB holds no NUL character: the record of it must not fail too.
            envelope = {"undecodable": raw.decode("utf-8", "replace").replace("\x00", "\ufffd")}
        async with self.runtime.engine.begin() as conn:
            return int(
                (
                    await conn.execute(
                        self.book.failed,
                        {
                            "reaction": self.reaction.name,
                            "sequence": sequence,
                            "event_id": envelope.get("id"),
                            "event_type": envelope.get("type", "?"),
                            "envelope": envelope,
                            "error": f"{type(error).__name__}: {error}"[:2000].replace(
                                "\x00", "\ufffd"
                            ),
                        },
                    )
                ).scalar_one()
            )

    async def _park(self, sequence: int) -> None:
        """Set the event aside and move past it, in one transaction."""
        params = {"reaction": self.reaction.name, "sequence": sequence}
        async with self.runtime.engine.begin() as conn:
            await self._checkpoint(conn)
            await conn.execute(self.book.park, params)
            await conn.execute(self.book.advance, params)
        log.error("reaction %s parked event %s", self.reaction.name, sequence)
        await self.runtime.count_parked()

    async def retry_parked(self, sequence: int) -> bool:
        """An operator's retry of a parked event: handled now, or still parked (raises)."""
        params = {"reaction": self.reaction.name, "sequence": sequence}
        async with self.runtime.engine.connect() as conn:
            row = (await conn.execute(self.book.claim_parked, params)).first()
        if row is None:
            return False
        envelope = CloudEvent.model_validate(row.envelope)
        recorded = self.reaction.events.recorded(envelope)

        async def work(tx: commands.Transaction) -> bool:
            if (await tx.conn.execute(self.book.claim_parked, params)).first() is None:
                return False  # retried meanwhile
            await self.reaction.handle(tx, recorded)
            await tx.conn.execute(self.book.forget, params)
            return True

        context = commands.CommandContext.of_event(self.actor, envelope, self.runtime.clock)
        try:
            done = await commands.transaction(self.runtime, context, work)
        except Exception as error:
            await self._failed(sequence, envelope.to_json(), error)
            raise
        await self.runtime.count_parked()
        return done
