"""PostgreSQL plumbing: engines, the kernel's tables in each service schema, and leadership
(one replica at a time runs a relay or a projection, elected by a session advisory lock)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class LeadershipTaken(Exception):
    """Another process (a running replica) leads this relay or projection."""


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # No pre-ping: it costs two round trips per checkout. After PostgreSQL restarts, the
    # first request to meet a dead connection fails (503) and SQLAlchemy then drops the
    # whole pool, so the next ones reconnect.
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=600)


def checked_schema(schema: str) -> str:
    """Schema names are spliced into SQL, so they must be plain identifiers."""
    if not IDENTIFIER.match(schema):
        raise ValueError(f"not a plain identifier: {schema!r}")
    return schema


def kernel_ddl(schema: str) -> list[str]:
    s = checked_schema(schema)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        # transaction_id orders readers by commit safety (see eventstore.read_committed).
        f"""CREATE TABLE IF NOT EXISTS {s}.events (
            position bigserial PRIMARY KEY,
            transaction_id bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
            event_id uuid NOT NULL UNIQUE,
            stream_id text NOT NULL,
            stream_version integer NOT NULL,
            event_type text NOT NULL,
            alliance_id text,
            occurred_at timestamptz NOT NULL,
            envelope jsonb NOT NULL,
            CONSTRAINT events_stream_version UNIQUE (stream_id, stream_version)
        )""",
        f"CREATE INDEX IF NOT EXISTS events_commit_order ON {s}.events (transaction_id, position)",
        f"""CREATE TABLE IF NOT EXISTS {s}.relay_checkpoint (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            transaction_id bigint NOT NULL,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.projection_checkpoints (
            projection text PRIMARY KEY,
            last_sequence bigint NOT NULL,
            paused_until timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.idempotency_keys (
            caller text NOT NULL,
            key text NOT NULL,
            request_hash text NOT NULL,
            status_code integer,
            body jsonb,
            headers jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (caller, key)
        )""",
        # A timer is keyed within its stream: scheduling the same key again moves it.
        f"""CREATE TABLE IF NOT EXISTS {s}.timers (
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
        f"""CREATE INDEX IF NOT EXISTS timers_due ON {s}.timers (due_at)
            WHERE fired_at IS NULL AND parked_at IS NULL""",
        f"""CREATE TABLE IF NOT EXISTS {s}.reaction_checkpoints (
            reaction text PRIMARY KEY,
            last_sequence bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.reaction_failures (
            reaction text NOT NULL,
            sequence bigint NOT NULL,
            event_id text,
            event_type text NOT NULL,
            envelope jsonb NOT NULL,
            attempts integer NOT NULL,
            error text NOT NULL,
            first_failed_at timestamptz NOT NULL DEFAULT now(),
            last_failed_at timestamptz NOT NULL DEFAULT now(),
            parked_at timestamptz,
            PRIMARY KEY (reaction, sequence)
        )""",
        # Within a stream, global order must agree with version order. A transaction that
        # got its id before a newer one committed the previous version (it wrote something
        # else first, such as its idempotency key) would be read before it: refuse it, and
        # the command retries in a new transaction.
        f"""CREATE OR REPLACE FUNCTION {s}.keep_stream_in_commit_order() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.stream_version > 1 AND EXISTS (
                  SELECT 1 FROM {s}.events
                  WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1
                    AND transaction_id > NEW.transaction_id) THEN
                RAISE EXCEPTION 'stream % moved on in a newer transaction', NEW.stream_id
                  USING ERRCODE = 'serialization_failure';
              END IF;
              RETURN NEW;
            END $$""",
        f"""CREATE OR REPLACE TRIGGER events_in_stream_order BEFORE INSERT ON {s}.events
            FOR EACH ROW EXECUTE FUNCTION {s}.keep_stream_in_commit_order()""",
    ]


def notify_channel(schema: str) -> str:
    return f"concord_{schema}_events"


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def install_schema(engine: AsyncEngine, schema: str, extra_ddl: Iterable[str] = ()) -> None:
    """Create the kernel tables and the service's read models; safe to run on every start."""
    async with engine.begin() as conn:
        # Replicas starting together would race on CREATE ... IF NOT EXISTS.
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"ddl:{schema}")}
        )
        for statement in [*kernel_ddl(schema), *extra_ddl]:
            await conn.execute(text(statement))


@asynccontextmanager
async def leadership(
    engine: AsyncEngine,
    name: str,
    *,
    retry_every: float = 2.0,
    wait: float | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[AsyncConnection]:
    """Wait until this process leads `name`, then yield the connection that holds the lock.
    Raise `LeadershipTaken` if another process still leads after `wait` seconds, or when
    `stop` is set while waiting (a replica shutting down stops queueing for leadership).

    The lock lives as long as that connection: work done on it stops with it, so a replica
    that lost its database session cannot go on acting as leader.
    """
    key = lock_key(name)
    deadline = None if wait is None else asyncio.get_running_loop().time() + wait
    while True:
        conn = await engine.connect()
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar()
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if got:
            break
        await conn.close()
        if deadline is not None and asyncio.get_running_loop().time() >= deadline:
            raise LeadershipTaken(name)
        if stop is None:
            await asyncio.sleep(retry_every)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry_every)
            if stop.is_set():
                raise LeadershipTaken(name)
    log.info("leading %s", name)
    try:
        yield conn
    finally:
        # Ending the session is what releases the lock. The connection may be mid-query
        # (we were cancelled), so close it hard rather than wait on a polite unlock.
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()


async def keep_leading(
    engine: AsyncEngine,
    name: str,
    *,
    stop: asyncio.Event,
    ready: Callable[[], Awaitable[bool]],
    lead: Callable[[AsyncConnection], Awaitable[None]],
    on_failure: Callable[[], None],
) -> None:
    """Lead `name` and do `lead(conn)` until `stop` is set; after any failure (a lost
    connection, NATS down) start over with back-off. `ready` may decline a round (say, while
    a rebuild holds the projection) and is asked again shortly."""
    delay = 0.1
    while not stop.is_set():
        try:
            if not await ready():
                await asyncio.sleep(0.5)
                continue
            async with leadership(engine, name, stop=stop) as conn:
                await lead(conn)
        except LeadershipTaken:
            return  # stopped while queueing for leadership
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("%s interrupted (%s); retrying", name, error)
            on_failure()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            delay = 0.1
