"""PostgreSQL plumbing: engines, lock keys, and leadership (one replica at a time runs a
relay or a projection, elected by a session advisory lock). The kernel's tables are in
`concord.tables`, and reach each service schema through `concord.migrations`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

NOTIFY_LINGER_SECONDS = 0.05
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class LeadershipTaken(Exception):
    """Another process (a running replica) leads this relay or projection."""


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    idle_in_transaction_timeout: float = 60.0,
    application_name: str | None = None,
) -> AsyncEngine:
    """The process's connection pool. A session it leaves idle inside a transaction is
    ended by the server after `idle_in_transaction_timeout` seconds (0: the server's own
    setting), because while it holds an xid no relay on the cluster can move past it."""
    # No pre-ping: it costs two round trips per checkout. After PostgreSQL restarts, the
    # first request to meet a dead connection fails (503) and SQLAlchemy then drops the
    # whole pool, so the next ones reconnect.
    server_settings = {}
    if idle_in_transaction_timeout > 0:
        milliseconds = max(1, round(idle_in_transaction_timeout * 1000))
        server_settings["idle_in_transaction_session_timeout"] = str(milliseconds)
    if application_name:  # names the service in pg_stat_activity, and in held-back warnings
        server_settings["application_name"] = application_name
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=600,
        connect_args={"server_settings": server_settings},
    )


def checked_schema(schema: str) -> str:
    """Schema names are spliced into SQL, so they must be plain identifiers."""
    if not IDENTIFIER.match(schema):
        raise ValueError(f"not a plain identifier: {schema!r}")
    return schema


def notify_channel(schema: str) -> str:
    return f"concord_{schema}_events"


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


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


@asynccontextmanager
async def woken_by_notify(
    conn: AsyncConnection, channel: str, wake: asyncio.Event
) -> AsyncIterator[None]:
    """While inside, a NOTIFY on `channel` (another replica committed) sets `wake`. Listens on
    the leader's own connection, so the listening ends with the leadership."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None

    def listener(*_: object) -> None:
        wake.set()

    await driver.add_listener(channel, listener)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await driver.remove_listener(channel, listener)


class Notifier:
    """NOTIFYs sent after commits, so other replicas' workers look again, without a command
    waiting for one: commits that come while a NOTIFY is on its way share the next one, and
    a burst shares one connection. Sent on the driver, outside any transaction: one round
    trip each. A NOTIFY lost (the process died first, the connection broke) only delays the
    work to the listener's next poll."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pending: set[str] = set()
        self._more = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self, channel: str) -> None:
        self._pending.add(channel)
        self._more.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send(), name="notify")

    async def _send(self) -> None:
        try:
            async with self.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection
                assert driver is not None
                while self._pending or await self._more_soon():
                    channels, self._pending = self._pending, set()
                    for channel in sorted(channels):
                        await driver.execute("SELECT pg_notify($1, '')", channel)
        except Exception as error:  # the commits stand: their listeners poll anyway
            log.warning("could not NOTIFY (%s); listeners find the work on their next poll", error)
            self._pending.clear()

    async def _more_soon(self) -> bool:
        """Keep the connection while commits keep coming; give it back when they pause."""
        self._more.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._more.wait(), NOTIFY_LINGER_SECONDS)
        return bool(self._pending)

    async def flush(self) -> None:
        """Send what is pending (a replica stopping)."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=2)


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
