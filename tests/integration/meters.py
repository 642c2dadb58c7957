"""A small domain for the kernel's reaction and timer tests: a meter takes readings; a
reading may ask for a check at a time (a timer), and every reading is echoed on a stream of
its own by a reaction. Readings in `FAILING` make the echo (or the check) fail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import text

from concord import commands
from concord.clock import ManualClock
from concord.domain import Actor, CancelTimer, Decider, DomainEvent, ScheduleTimer, TimerChange
from concord.events import EventRegistry, Recorded
from concord.reactions import Reaction
from concord.runtime import ServiceRuntime
from concord.timers import DueTimer, Timer
from tests.integration.conftest import KernelTestSettings

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FAILING: set[int] = set()


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


REGISTRY = EventRegistry("kerneltest")
REGISTRY.register(ReadingTaken, ReadingChecked, ReadingEchoed)


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
    readings: tuple[int, ...] = ()
    checked: tuple[int, ...] = ()


def decide(state: Meter, command: TakeReading | CheckReading | Echo) -> list[DomainEvent]:
    match command:
        case TakeReading(reading=reading, check_at=check_at):
            return [ReadingTaken(reading=reading, check_at=check_at)]
        case CheckReading(reading=reading):
            if reading in FAILING:
                raise RuntimeError(f"the check of {reading} fails")
            return [ReadingChecked(reading=reading)]
        case Echo(reading=reading, of_version=of_version):
            if reading in FAILING:
                raise RuntimeError(f"the echo of {reading} fails")
            return [ReadingEchoed(reading=reading, of_version=of_version)]
    raise TypeError(command)


def evolve(state: Meter, event: DomainEvent) -> Meter:
    match event:
        case ReadingTaken(reading=reading):
            return replace(state, readings=(*state.readings, reading))
        case ReadingChecked(reading=reading):
            return replace(state, checked=(*state.checked, reading))
    return state


def timers(state: Meter, events: Sequence[DomainEvent]) -> list[TimerChange]:
    """A reading with a check time schedules (or moves) the check; a reading of 0 cancels it."""
    changes: list[TimerChange] = []
    for event in events:
        if isinstance(event, ReadingTaken) and event.check_at is not None:
            changes.append(
                ScheduleTimer("check", event.check_at, "check", {"reading": event.reading})
            )
        elif isinstance(event, ReadingTaken) and event.reading == 0:
            changes.append(CancelTimer("check"))
    return changes


meter: Decider[Meter, Any] = Decider("meter", Meter, decide, evolve, timers)


async def _check(tx: commands.Transaction, timer: DueTimer) -> None:
    command = CheckReading(timer.data["reading"])
    await commands.decide_on(tx, meter, timer.stream_id, timer.alliance_id, command)


async def _echo(tx: commands.Transaction, recorded: Recorded[Any]) -> None:
    command = Echo(recorded.event.reading, recorded.stream_version)
    await commands.decide_on(tx, meter, f"echo-{recorded.stream_id}", None, command)


CHECK = Timer(name="check", fire=_check)
ECHO = Reaction(
    name="echo",
    events=REGISTRY,
    subjects=("concord.kerneltest.meter.reading_taken.*",),
    handle=_echo,
)
ALICE = Actor(sub="alice", org="acme")


def context(runtime: ServiceRuntime, actor: Actor = ALICE) -> commands.CommandContext:
    return commands.CommandContext(
        actor=actor, correlation_id="req-1", causation_id="req-1", clock=runtime.clock
    )


async def take(
    runtime: ServiceRuntime, stream_id: str, reading: int, check_at: datetime | None = None
) -> None:
    async def work(tx: commands.Transaction) -> None:
        await commands.decide_on(tx, meter, stream_id, None, TakeReading(reading, check_at))

    await commands.transaction(runtime, context(runtime), work)


def meter_runtime(
    settings: Callable[..., Any], clock: ManualClock, **overrides: Any
) -> ServiceRuntime:
    values = {"work_max_attempts": 3, "work_retry_delay": 0.01, **overrides}
    return ServiceRuntime(
        settings(KernelTestSettings, **values),
        registry=REGISTRY,
        reactions=[ECHO],
        timers=[CHECK],
        clock=clock,
    )


@asynccontextmanager
async def running(runtime: ServiceRuntime) -> AsyncIterator[ServiceRuntime]:
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def events_of(runtime: ServiceRuntime, event_type: str) -> list[dict[str, Any]]:
    """Every stored event of a type (its envelope), in commit order."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT envelope FROM kerneltest.events WHERE event_type = :type "
                "ORDER BY transaction_id, position"
            ),
            {"type": event_type},
        )
        return [row.envelope for row in rows]


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Wait until `check()` (awaited) is truthy: for work that other tasks do."""
    import asyncio

    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.02)
