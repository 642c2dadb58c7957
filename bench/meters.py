"""The small domain the command, timer and reaction benchmarks run (the shape of
tests/integration/meters.py): a meter takes readings; a reading may ask for a check at a
time (a timer), and a reaction echoes every reading on a stream of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from bench.stack import JWT_SECRET, Stack
from concord import commands
from concord.clock import SYSTEM_CLOCK, Clock
from concord.domain import Actor, Decider, DomainEvent, ScheduleTimer, TimerChange
from concord.events import EventRegistry, Recorded
from concord.reactions import Reaction
from concord.runtime import ServiceRuntime
from concord.settings import ServiceSettings
from concord.timers import DueTimer, Timer

SERVICE = "benchmeter"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class ReadingTaken(DomainEvent):
    aggregate: ClassVar[str] = "meter"
    reading: int
    check_at: datetime | None = None


class ReadingChecked(DomainEvent):
    aggregate: ClassVar[str] = "meter"
    reading: int


class ReadingEchoed(DomainEvent):
    aggregate: ClassVar[str] = "meter"
    reading: int
    of_version: int


REGISTRY = EventRegistry(SERVICE)
REGISTRY.register(ReadingTaken, ReadingChecked, ReadingEchoed)
TAKEN_SUBJECT = f"concord.{SERVICE}.meter.reading_taken.v1"


@dataclass(frozen=True)
class TakeReading:
    reading: int
    check_at: datetime | None = None


@dataclass(frozen=True)
class CheckReading:
    reading: int


@dataclass(frozen=True)
class Echo:
    reading: int
    of_version: int


@dataclass(frozen=True)
class Meter:
    # Only the count: a state that grows with its stream would make later commands slower.
    readings: int = 0


def decide(state: Meter, command: TakeReading | CheckReading | Echo) -> list[DomainEvent]:
    match command:
        case TakeReading(reading=reading, check_at=check_at):
            return [ReadingTaken(reading=reading, check_at=check_at)]
        case CheckReading(reading=reading):
            return [ReadingChecked(reading=reading)]
        case Echo(reading=reading, of_version=of_version):
            return [ReadingEchoed(reading=reading, of_version=of_version)]
    raise TypeError(command)


def evolve(state: Meter, event: DomainEvent) -> Meter:
    return Meter(state.readings + 1) if isinstance(event, ReadingTaken) else state


def timers(state: Meter, events: Sequence[DomainEvent]) -> list[TimerChange]:
    return [
        ScheduleTimer("check", e.check_at, "check", {"reading": e.reading})
        for e in events
        if isinstance(e, ReadingTaken) and e.check_at is not None
    ]


meter: Decider[Meter, Any] = Decider("meter", Meter, decide, evolve, timers)


async def _check(tx: commands.Transaction, timer: DueTimer) -> None:
    command = CheckReading(timer.data["reading"])
    await commands.decide_on(tx, meter, timer.stream_id, timer.alliance_id, command)


async def _echo(tx: commands.Transaction, recorded: Recorded[Any]) -> None:
    command = Echo(recorded.event.reading, recorded.stream_version)
    await commands.decide_on(tx, meter, f"echo-{recorded.stream_id}", None, command)


CHECK = Timer(name="check", fire=_check)
ECHO = Reaction(name="echo", events=REGISTRY, subjects=(TAKEN_SUBJECT,), handle=_echo)
BENCH_ACTOR = Actor(sub="bench", org="acme")


class MeterSettings(ServiceSettings):
    service: ClassVar[str] = SERVICE


def meter_runtime(stack: Stack, database: str, clock: Clock = SYSTEM_CLOCK) -> ServiceRuntime:
    """The meter service as a service would wire it (its workers are started by the caller)."""
    settings = MeterSettings(
        database_url=stack.url(database),
        nats_url=stack.nats.url,
        jwt_secret=JWT_SECRET,
        log_level="ERROR",
        database_pool_size=10,
    )
    return ServiceRuntime(
        settings, registry=REGISTRY, reactions=[ECHO], timers=[CHECK], clock=clock
    )


def context(runtime: ServiceRuntime, request: str) -> commands.CommandContext:
    return commands.CommandContext(
        actor=BENCH_ACTOR, correlation_id=request, causation_id=request, clock=runtime.clock
    )


async def take(
    runtime: ServiceRuntime, stream_id: str, reading: int, check_at: datetime | None = None
) -> None:
    """One command on the command path: load the stream, decide, append, commit, wake."""

    async def work(tx: commands.Transaction) -> None:
        write = await tx.stream(meter, stream_id, None)
        await write.append(decide(write.state, TakeReading(reading, check_at)))

    await commands.transaction(runtime, context(runtime, f"take-{stream_id}-{reading}"), work)


@asynccontextmanager
async def relay_in_this_process(runtime: ServiceRuntime) -> AsyncIterator[ServiceRuntime]:
    """The runtime with its relay leading in this process (as in the embedded default and in
    a worker): the wake after a commit is an in-process event, and the relay publishes the
    events while they are being written."""
    connecting = asyncio.create_task(runtime.bus.connect())
    relay = asyncio.create_task(runtime.relay.run())
    try:
        # A quiet pass of the relay: it leads, and has published whatever was there.
        if not await runtime.relay.drained(10):
            raise RuntimeError("the relay did not start leading")
        yield runtime
    finally:
        runtime.relay.stop()
        await asyncio.wait({relay}, timeout=5)
        connecting.cancel()
        await runtime.bus.close()
