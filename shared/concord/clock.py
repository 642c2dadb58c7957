"""Time, injectable: commands stamp their events and schedule their timers by the runtime's
clock, and the timer scheduler fires by it, so tests move time instead of sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def moved(self) -> None:
        """Resolves when time jumps (never, for the real clock): the scheduler looks again."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def moved(self) -> None:
        await asyncio.Event().wait()


class ManualClock:
    """A clock that stands still until told to move (tests, benchmarks, demo stories)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)

    def set(self, moment: datetime) -> None:
        self._now = moment
        self._moved.set()
        self._moved = asyncio.Event()

    async def moved(self) -> None:
        await self._moved.wait()


SYSTEM_CLOCK = SystemClock()
