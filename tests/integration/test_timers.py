"""Timers: scheduled in a command's transaction, fired exactly once in effect by the clock
the runtime is given (tests move it, nothing sleeps), across restarts and leader changes;
a cancelled timer never fires, a moved one fires at its new time only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import text

from concord import ops
from concord.clock import ManualClock
from concord.runtime import ServiceRuntime
from tests.integration.meters import (
    FAILING,
    START,
    events_of,
    eventually,
    meter_runtime,
    running,
    take,
)

CHECKED = "concord.kerneltest.meter.reading_checked.v1"
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def nothing_fails() -> AsyncIterator[None]:
    FAILING.clear()
    yield
    FAILING.clear()


@pytest.fixture
async def idle(settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    """A runtime with its schema and no workers: the test fires timers itself."""
    runtime = meter_runtime(settings, ManualClock(START))
    await runtime.install()
    yield runtime
    await runtime.engine.dispose()


def checked(events: list[dict[str, Any]]) -> list[int]:
    return sorted(e["data"]["reading"] for e in events)


async def test_a_timer_fires_once_when_its_time_comes_as_its_own_cause(
    idle: ServiceRuntime,
) -> None:
    clock = idle.clock
    assert isinstance(clock, ManualClock)
    stream = f"meter-{uuid4()}"
    await take(idle, stream, 7, check_at=START + HOUR)

    assert await idle.scheduler.fire_due() == 0  # not yet
    clock.advance(HOUR - timedelta(seconds=1))
    assert await idle.scheduler.fire_due() == 0
    clock.advance(timedelta(seconds=1))
    assert await idle.scheduler.fire_due() == 1
    assert await idle.scheduler.fire_due() == 0  # fired: never again
    clock.advance(24 * HOUR)
    assert await idle.scheduler.fire_due() == 0

    [event] = await events_of(idle, CHECKED)
    assert event["data"]["reading"] == 7
    async with idle.engine.connect() as conn:
        timer = (
            await conn.execute(
                text("SELECT timer_id, fired_at FROM kerneltest.timers WHERE stream_id = :s"),
                {"s": stream},
            )
        ).one()
    assert timer.fired_at == START + HOUR  # by the runtime's clock
    assert event["causationid"] == str(timer.timer_id)
    assert event["correlationid"] == "req-1"  # the command that scheduled it
    assert (event["actorsub"], event["actororg"]) == ("kerneltest/timer", None)


async def test_a_cancelled_timer_never_fires_and_a_moved_one_fires_at_its_new_time(
    idle: ServiceRuntime,
) -> None:
    clock = idle.clock
    assert isinstance(clock, ManualClock)
    cancelled, moved = f"meter-{uuid4()}", f"meter-{uuid4()}"
    await take(idle, cancelled, 1, check_at=START + HOUR)
    await take(idle, cancelled, 0)  # a reading of 0 cancels the check
    await take(idle, moved, 2, check_at=START + HOUR)
    await take(idle, moved, 3, check_at=START + 3 * HOUR)  # the same key: moved

    clock.advance(2 * HOUR)
    assert await idle.scheduler.fire_due() == 0
    clock.advance(HOUR)
    assert await idle.scheduler.fire_due() == 1
    assert checked(await events_of(idle, CHECKED)) == [3]


async def test_concurrent_schedulers_fire_each_timer_once(idle: ServiceRuntime) -> None:
    for reading in range(40):
        await take(idle, f"meter-{uuid4()}", reading, check_at=START + HOUR)
    assert isinstance(idle.clock, ManualClock)
    idle.clock.advance(HOUR)
    fired = await asyncio.gather(*(idle.scheduler.fire_due() for _ in range(4)))
    assert sum(fired) == 40
    assert checked(await events_of(idle, CHECKED)) == list(range(40))


async def test_timers_fire_once_across_a_restart_a_leader_change_and_late_on_start(
    settings: Callable[..., Any],
) -> None:
    clock = ManualClock(START)
    first = meter_runtime(settings, clock)
    second = meter_runtime(settings, clock)
    async with running(first):
        for reading in range(5):
            await take(first, f"meter-{uuid4()}", reading, check_at=START + HOUR)
        clock.advance(HOUR)  # the leading scheduler sees the clock move
        await eventually(lambda: _checked_at_least(first, 5))
        for reading in range(5, 10):
            await take(first, f"meter-{uuid4()}", reading, check_at=START + 3 * HOUR)
        async with running(second):  # queues for leadership behind the first
            pass
    # Nobody runs while the clock passes the other timers: they fire late, on start.
    clock.advance(5 * HOUR)
    async with running(second):
        await eventually(lambda: _checked_at_least(second, 10))
        async with running(meter_runtime(settings, clock)) as third:
            for reading in range(10, 15):
                await take(third, f"meter-{uuid4()}", reading, check_at=clock.now() + HOUR)
            clock.advance(HOUR)  # the second leads; the third waits
            await eventually(lambda: _checked_at_least(third, 15))
    assert checked(await _checked(second)) == list(range(15))


async def test_a_failing_timer_leaves_nothing_retries_then_parks_for_an_operator(
    idle: ServiceRuntime,
) -> None:
    clock = idle.clock
    assert isinstance(clock, ManualClock)
    FAILING.add(9)
    await take(idle, f"meter-{uuid4()}", 9, check_at=START)
    assert await idle.scheduler.fire_due() == 0  # failed: rolled back, nothing appended
    assert await events_of(idle, CHECKED) == []
    for _ in range(2):
        clock.advance(timedelta(seconds=10))  # past the back-off
        assert await idle.scheduler.fire_due() == 0
    [timer] = (await ops.parked(idle)).timers
    assert timer.attempts == 3
    assert "the check of 9 fails" in (timer.error or "")
    clock.advance(HOUR)
    assert await idle.scheduler.fire_due() == 0  # parked: not retried by itself

    FAILING.clear()
    await ops.retry_timer(idle, timer.timer_id)
    assert await idle.scheduler.fire_due() == 1
    assert checked(await events_of(idle, CHECKED)) == [9]
    assert (await ops.parked(idle)).timers == []


async def _checked(runtime: ServiceRuntime) -> list[dict[str, Any]]:
    return await events_of(runtime, CHECKED)


async def _checked_at_least(runtime: ServiceRuntime, count: int) -> bool:
    return len(await _checked(runtime)) >= count
