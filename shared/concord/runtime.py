"""One service's running parts, wired once: database, event store, bus, and its workers (the
outbox relay, projection runners, reaction runners and the timer scheduler). The app
factory starts and stops it with the HTTP server; `concord worker` runs the workers alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from concord.auth import Authenticator
from concord.bus import Bus
from concord.clock import SYSTEM_CLOCK, Clock
from concord.db import Notifier, create_engine, notify_channel
from concord.events import EventRegistry
from concord.eventstore import EventStore
from concord.intake import ParkedMessages
from concord.membership import Alliances
from concord.migrations import Migrated, migrate
from concord.observability import WORK_PARKED
from concord.outbox import Relay
from concord.projections import Projection, ProjectionRunner
from concord.reactions import Reaction, ReactionBook, ReactionRunner
from concord.secrets import SETTING, SealedColumn, SecretBox, SecretsUnavailable
from concord.settings import ServiceSettings
from concord.timers import Scheduler, Timer, TimerBook

log = logging.getLogger(__name__)
T = TypeVar("T")


class AggregateCache:
    """The latest folded state of recently used streams, so a command folds only the events
    appended since (by any replica) instead of the whole history. States are immutable, and
    only committed states go in, so a cached state is always a true state at its version."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._states: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    def get(self, stream_id: str) -> tuple[int, Any] | None:
        found = self._states.get(stream_id)
        if found is not None:
            self._states.move_to_end(stream_id)
        return found

    def put(self, stream_id: str, version: int, state: Any) -> None:
        known = self._states.get(stream_id)
        if known is not None and known[0] > version:
            return  # a newer state arrived meanwhile
        self._states[stream_id] = (version, state)
        self._states.move_to_end(stream_id)
        while len(self._states) > self._size:
            self._states.popitem(last=False)


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        registry: EventRegistry | None = None,
        projections: Sequence[Projection] = (),
        reactions: Sequence[Reaction] = (),
        timers: Sequence[Timer] = (),
        migrations: Path | None = None,
        sealed: Sequence[SealedColumn] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`migrations` is the directory of the service's own branch of revisions (its
        tables: read models and the rest); without it the schema has the kernel's only.
        `sealed` are the columns that hold its secrets at rest (sealed with `secrets`)."""
        self.settings = settings
        self.clock = clock
        self.service = settings.service
        self.schema = settings.service
        self.registry = registry or EventRegistry(self.service)
        self.engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            idle_in_transaction_timeout=settings.database_idle_in_transaction_timeout,
            application_name=f"concord-{self.service}",
        )
        password = settings.nats_password
        self.bus = Bus(
            settings.nats_url,
            owner=self.service,
            user=settings.nats_user,
            password=password.get_secret_value() if password else None,
            replicas=settings.nats_replicas,
            duplicate_window=settings.nats_duplicate_window,
        )
        self.store = EventStore(self.schema)
        self.authenticator = Authenticator(settings)
        self.relay = Relay(
            self.engine,
            self.store,
            self.bus,
            service=self.service,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval,
            held_back_warning_after=settings.relay_held_back_warning_after,
        )
        # Every service knows the alliances and their partners, the same way.
        self.alliances = Alliances(self.schema)
        projections = [self.alliances, *projections]
        self.projections = list(projections)
        self.migrations = migrations
        self.runners = {
            p.name: ProjectionRunner(
                self.engine,
                self.bus,
                p,
                service=self.service,
                schema=self.schema,
                batch_size=settings.projection_batch_size,
                rebuild_batch_size=settings.projection_rebuild_batch_size,
            )
            for p in projections
        }
        self.parked_messages = ParkedMessages(self.schema)
        self.reaction_book = ReactionBook(self.schema)
        self.reactions = {r.name: ReactionRunner(self, r) for r in reactions}
        self.timer_book = TimerBook(self.schema)
        self.scheduler = Scheduler(self, timers)
        self.channel = notify_channel(self.schema)
        self.notifier = Notifier(self.engine)
        self.aggregates = AggregateCache()
        self.sealed = tuple(sealed)
        keys = settings.secrets_keys
        self._secrets = SecretBox.from_setting(keys.get_secret_value() if keys else None)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def secrets(self) -> SecretBox:
        """What seals and opens this service's secrets at rest."""
        if self._secrets is None:
            raise SecretsUnavailable(
                f"{self.service} keeps secrets at rest: set {SETTING} (docs/operations/runbook.md)"
            )
        return self._secrets

    async def install(self) -> Migrated:
        """Migrate the service's schema to head (replicas starting together queue for it).
        A service that keeps secrets refuses to go further without the keys to seal them."""
        if self.sealed:
            self.secrets  # noqa: B018 (raises without keys)
        return await migrate(self.engine, self.schema, self.migrations, secrets=self._secrets)

    async def start(self) -> None:
        """Install the schema and connect; run the workers too unless settings say not to
        (an API replica in production leaves them to `concord worker`)."""
        await self.install()
        self._tasks = [asyncio.create_task(self.bus.connect(), name=f"{self.service}-bus")]
        if self.settings.run_workers:
            await self.count_parked()
            self._tasks += [
                asyncio.create_task(self.relay.run(), name=f"{self.service}-relay"),
                asyncio.create_task(self.scheduler.run(), name=f"{self.service}-timers"),
                *(
                    asyncio.create_task(runner.run(), name=f"{self.service}-{name}")
                    for name, runner in self.runners.items()
                ),
                *(
                    asyncio.create_task(runner.run(), name=f"{self.service}-reaction-{name}")
                    for name, runner in self.reactions.items()
                ),
            ]

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Graceful stop: publish what is committed, then let go of NATS and PostgreSQL.
        (A replica that does not lead the relay has nothing to flush: the leader publishes.)"""
        leading = self.relay.is_leading and self.bus.is_connected
        if leading and not await self.relay.drained(drain_timeout):
            log.warning(
                "stopping %s with events not yet published; the next start sends them", self.service
            )
        self.relay.stop()
        self.scheduler.stop()
        for runner in self.runners.values():
            runner.stop()
        for reaction in self.reactions.values():
            reaction.stop()
        tasks, self._tasks = self._tasks, []
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:  # still connecting, or waiting out an outage
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
        await self.notifier.flush()
        await self.bus.close()
        await self.engine.dispose()

    async def events_committed(self) -> None:
        """Wake the relay after a commit: directly when it runs in this process, otherwise by
        NOTIFY to the replica that leads it. Sent after the commit, not from a trigger inside
        it: PostgreSQL serialises the commits of notifying transactions, which would put every
        writer behind one lock."""
        if self.relay.is_leading:
            self.relay.wake()
            return
        self.notifier.notify(self.channel)

    async def timers_changed(self) -> None:
        """A command scheduled or moved a timer: the scheduler looks again, woken directly
        or by NOTIFY to the replica that leads it (after the commit, as for the relay)."""
        if self.scheduler.is_leading:
            self.scheduler.wake()
            return
        self.notifier.notify(self.scheduler.channel)

    async def count_parked(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            counts = {
                "reaction": int((await conn.execute(self.reaction_book.count_parked)).scalar_one()),
                "timer": int((await conn.execute(self.timer_book.count_parked)).scalar_one()),
                "projection": int((await conn.execute(self.parked_messages.count)).scalar_one()),
            }
        for kind, count in counts.items():
            WORK_PARKED.labels(self.service, kind).set(count)
        return counts

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only REPEATABLE READ transaction: several read-model tables read as of one
        moment, so a page's version is the version of every row on it."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                yield conn

    async def readiness(self) -> dict[str, bool]:
        checks = {"postgres": False, "nats": self.bus.is_connected}
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2), self.engine.connect() as conn:
                checks["postgres"] = (await conn.execute(text("SELECT 1"))).scalar() == 1
        return checks

    async def read_your_writes(
        self, query: Callable[[], Awaitable[T | None]], *, projection: str
    ) -> T | None:
        """Ask `query` until it finds something or the bounded wait ends: a client that has
        just written in another service usually finds its write here within milliseconds."""
        deadline = time.monotonic() + self.settings.read_your_writes_wait
        runner = self.runners[projection]
        while True:
            found = await query()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            # Another replica may lead the projection, so poll as well as listen.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.changed(), min(remaining, 0.05))
