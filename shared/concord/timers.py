"""Timers: commands that run at a time, with nobody calling an API.

A decision schedules, moves or cancels a timer in its own transaction (`Decider.timers`), so
a timer exists exactly when the events that set it do. A leader-run scheduler fires each due
timer in a transaction of its own: it locks the timer row, runs the service's handler (which
appends events like any command) and marks the timer fired, all in one commit. A crash
before that commit leaves the timer due, so it fires on the next start, late rather than
never; a second scheduler finds the row locked or fired, so it never fires twice. Time comes
from the runtime's clock: tests move a `ManualClock` and nothing sleeps.

A handler that keeps failing is retried with back-off, then parked with its error, for an
operator to retry (`concord parked`, `/ops/parked`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from concord import commands
from concord.db import checked_schema, keep_leading, notify_channel, woken_by_notify
from concord.domain import Actor, Rejected, ScheduleTimer
from concord.observability import TIMERS_FIRED, TIMERS_PARKED

if TYPE_CHECKING:
    from concord.runtime import ServiceRuntime

log = logging.getLogger(__name__)
PARKED_RECOUNT_SECONDS = 15.0
BUSY_TIMER_WAIT = 0.01


@dataclass(frozen=True)
class DueTimer:
    id: uuid.UUID
    stream_id: str
    key: str
    name: str
    alliance_id: str | None
    data: dict[str, Any]
    due: datetime


@dataclass(frozen=True)
class Timer:
    """What a service does when a timer called `name` is due: `fire` runs in the timer's
    transaction and issues commands through it (`commands.decide_on`)."""

    name: str
    fire: Callable[[commands.Transaction, DueTimer], Awaitable[None]]


class TimerBook:
    """The service's timers table: scheduled in commands' transactions, fired by the
    scheduler."""

    def __init__(self, schema: str) -> None:
        s = checked_schema(schema)
        self._schedule = text(
            f"""INSERT INTO {s}.timers (stream_id, key, timer_id, name, alliance_id, data,
                    due_at, correlation_id, scheduled_by)
                VALUES (:stream_id, :key, :timer_id, :name, :alliance_id, :data, :due,
                    :correlation_id, :scheduled_by)
                ON CONFLICT (stream_id, key) DO UPDATE SET timer_id = excluded.timer_id,
                    name = excluded.name, data = excluded.data, due_at = excluded.due_at,
                    correlation_id = excluded.correlation_id,
                    scheduled_by = excluded.scheduled_by, fired_at = NULL, attempts = 0,
                    last_error = NULL, parked_at = NULL"""
        ).bindparams(bindparam("data", type_=JSONB))
        self._cancel = text(
            f"DELETE FROM {s}.timers WHERE stream_id = :stream_id AND key = :key "
            "AND fired_at IS NULL"
        )
        self.due = text(
            f"""SELECT stream_id, key, timer_id, correlation_id FROM {s}.timers
                WHERE due_at <= :now AND fired_at IS NULL AND parked_at IS NULL
                ORDER BY due_at LIMIT :limit"""
        )
        self.claim = text(
            f"""SELECT timer_id, stream_id, key, name, alliance_id, data, due_at FROM {s}.timers
                WHERE stream_id = :stream_id AND key = :key AND timer_id = :timer_id
                  AND fired_at IS NULL AND parked_at IS NULL
                FOR UPDATE SKIP LOCKED"""
        ).columns(data=JSONB)
        self.fired = text(
            f"UPDATE {s}.timers SET fired_at = :now WHERE stream_id = :stream_id "
            "AND key = :key AND timer_id = :timer_id"
        )
        self.failed = text(
            f"""UPDATE {s}.timers SET attempts = attempts + 1, last_error = :error,
                    due_at = CAST(:now AS timestamptz)
                        + make_interval(secs => :delay * power(2, attempts)),
                    parked_at = CASE WHEN attempts + 1 >= :max_attempts
                        THEN CAST(:now AS timestamptz) END
                WHERE stream_id = :stream_id AND key = :key AND timer_id = :timer_id
                RETURNING parked_at IS NOT NULL AS parked"""
        )
        self.next_due = text(
            f"SELECT min(due_at) FROM {s}.timers WHERE fired_at IS NULL AND parked_at IS NULL"
        )
        self.parked = text(
            f"""SELECT timer_id, stream_id, key, name, alliance_id, due_at, attempts,
                    last_error, parked_at FROM {s}.timers
                WHERE parked_at IS NOT NULL ORDER BY parked_at, timer_id"""
        )
        self.count_parked = text(f"SELECT count(*) FROM {s}.timers WHERE parked_at IS NOT NULL")
        self._unpark = text(
            f"""UPDATE {s}.timers SET parked_at = NULL, attempts = 0, due_at = :now
                WHERE timer_id = :timer_id AND parked_at IS NOT NULL"""
        )

    async def schedule(
        self,
        conn: AsyncConnection,
        stream_id: str,
        alliance_id: str | None,
        timers: Sequence[ScheduleTimer],
        context: commands.CommandContext,
    ) -> None:
        await conn.execute(
            self._schedule,
            [
                {
                    "stream_id": stream_id,
                    "key": t.key,
                    "timer_id": uuid.uuid4(),
                    "name": t.name,
                    "alliance_id": alliance_id,
                    "data": dict(t.data),
                    "due": t.due,
                    "correlation_id": context.correlation_id,
                    "scheduled_by": context.causation_id,
                }
                for t in timers
            ],
        )

    async def cancel(self, conn: AsyncConnection, stream_id: str, keys: Sequence[str]) -> None:
        await conn.execute(self._cancel, [{"stream_id": stream_id, "key": k} for k in keys])

    async def unpark(self, conn: AsyncConnection, timer_id: uuid.UUID, now: datetime) -> bool:
        return (await conn.execute(self._unpark, {"timer_id": timer_id, "now": now})).rowcount == 1


class Scheduler:
    """Fires the service's due timers; one replica leads it at a time."""

    def __init__(self, runtime: ServiceRuntime, timers: Sequence[Timer]) -> None:
        self.runtime = runtime
        self.book = runtime.timer_book
        self.timers = {t.name: t for t in timers}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.is_leading = False
        self.channel = f"{notify_channel(runtime.schema)}_timers"
        settings = runtime.settings
        self.batch_size = settings.timer_batch_size
        self.max_attempts = settings.work_max_attempts
        self.retry_delay = settings.work_retry_delay

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        self._stop.clear()
        await keep_leading(
            self.runtime.engine,
            f"timers:{self.runtime.schema}",
            stop=self._stop,
            ready=self._ready,
            lead=self._lead,
            on_failure=lambda: None,
        )

    async def _ready(self) -> bool:
        return True

    async def _lead(self, conn: AsyncConnection) -> None:
        # Other replicas' commands NOTIFY when they schedule a timer (see ServiceRuntime).
        async with woken_by_notify(conn, self.channel, self._wake):
            self.is_leading = True
            try:
                await self._follow_clock(conn)
            finally:
                self.is_leading = False

    async def _follow_clock(self, conn: AsyncConnection) -> None:
        clock = self.runtime.clock
        recount_at = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            if time.monotonic() >= recount_at:
                # Parked work is retried from any replica: the leader keeps the gauge true.
                await self.runtime.count_parked()
                recount_at = time.monotonic() + PARKED_RECOUNT_SECONDS
            if await self.fire_due() == self.batch_size:
                continue
            next_due = (await conn.execute(self.book.next_due)).scalar()
            await conn.commit()
            wait = self.runtime.settings.timer_poll_interval
            if next_due is not None:
                # A timer already due but not fired is held by a command still open: give
                # it a moment rather than spin.
                wait = max(BUSY_TIMER_WAIT, min(wait, (next_due - clock.now()).total_seconds()))
            moved = asyncio.ensure_future(clock.moved())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({moved, woken}, timeout=wait, return_when="FIRST_COMPLETED")
            finally:
                moved.cancel()
                woken.cancel()

    async def fire_due(self) -> int:
        """Fire every timer due by the clock (up to a batch); returns how many fired."""
        now = self.runtime.clock.now()
        async with self.runtime.engine.connect() as conn:
            due = (await conn.execute(self.book.due, {"now": now, "limit": self.batch_size})).all()
        fired = 0
        for row in due:
            if await self._fire(row):
                fired += 1
        return fired

    async def _fire(self, due: Any) -> bool:
        """Fire one timer that was due (a row of `TimerBook.due`), unless it has since fired,
        moved or been cancelled, or another scheduler holds it."""
        runtime = self.runtime
        ids = {"stream_id": due.stream_id, "key": due.key, "timer_id": due.timer_id}
        found: DueTimer | None = None

        async def work(tx: commands.Transaction) -> bool:
            nonlocal found
            row = (await tx.conn.execute(self.book.claim, ids)).first()
            if row is None:
                return False  # fired, moved, cancelled or being fired elsewhere
            found = DueTimer(
                row.timer_id,
                row.stream_id,
                row.key,
                row.name,
                row.alliance_id,
                row.data,
                row.due_at,
            )
            handler = self.timers.get(found.name)
            if handler is None:
                raise LookupError(f"no timer handler named {found.name}")
            try:
                await handler.fire(tx, found)
            except Rejected as refusal:
                log.info(
                    "timer %s/%s had nothing to do: %s", due.stream_id, due.key, refusal.detail
                )
            await tx.conn.execute(self.book.fired, {**ids, "now": runtime.clock.now()})
            return True

        # Caused by the timer, in the correlation of the command that scheduled it.
        context = commands.CommandContext(
            actor=Actor.system(f"{runtime.service}/timer"),
            correlation_id=due.correlation_id or str(due.timer_id),
            causation_id=str(due.timer_id),
            clock=runtime.clock,
        )
        try:
            done = await commands.transaction(runtime, context, work)
        except Exception as error:
            await self._failed(ids, error)
            return False
        if done and found is not None:
            TIMERS_FIRED.labels(runtime.service, found.name).inc()
        return done

    async def _failed(self, ids: dict[str, Any], error: Exception) -> None:
        now = self.runtime.clock.now()
        async with self.runtime.engine.begin() as conn:
            row = (
                await conn.execute(
                    self.book.failed,
                    {
                        **ids,
                        "error": f"{type(error).__name__}: {error}"[:2000],
                        "now": now,
                        "delay": self.retry_delay,
                        "max_attempts": self.max_attempts,
                    },
                )
            ).first()
        parked = bool(row and row.parked)
        log.warning("timer %s failed (%s)%s", ids["key"], error, "; parked" if parked else "")
        if parked:
            TIMERS_PARKED.labels(self.runtime.service).inc()
            await self.runtime.count_parked()
