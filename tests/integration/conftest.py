"""Kernel pieces wired as a service would wire them, without the HTTP layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from nats.js import JetStreamContext
from sqlalchemy import text

from concord.domain import DomainEvent
from concord.events import CloudEvent, EventRegistry
from concord.runtime import ServiceRuntime
from concord.settings import ServiceSettings
from tests.conftest import Stack, nats_as


class PulseRecorded(DomainEvent):
    """A small event for kernel tests: a reading recorded on a stream."""

    aggregate: ClassVar[str] = "pulse"
    reading: int


SERVICE = "kerneltest"


class KernelTestSettings(ServiceSettings):
    service: ClassVar[str] = SERVICE


def registry() -> EventRegistry:
    events = EventRegistry(SERVICE)
    events.register(PulseRecorded)
    return events


def pulses(
    stream_id: str, readings: range | list[int], *, start_version: int = 0
) -> list[CloudEvent]:
    events = registry()
    return [
        events.envelope(
            PulseRecorded(reading=r),
            stream_id=stream_id,
            stream_version=start_version + i,
            alliance_id=None,
        )
        for i, r in enumerate(readings, start=1)
    ]


@pytest.fixture
async def runtime(settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    """A runtime with its schema installed but nothing running: tests drive each part."""
    rt = ServiceRuntime(settings(KernelTestSettings), registry=registry())
    await rt.install()
    yield rt
    await rt.bus.close()
    await rt.engine.dispose()


@pytest.fixture
async def js(nats_url: str, stack: Stack) -> AsyncIterator[JetStreamContext]:
    """JetStream as `admin`, who may look at (and publish on) any stream."""
    nc = await nats_as(stack)
    yield nc.jetstream()
    await nc.close()


async def stream_events(js: JetStreamContext, stream: str) -> list[CloudEvent]:
    """Every message in a stream, in stream order, read without disturbing any consumer."""
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        assert msg.data is not None
        out.append(CloudEvent.from_json(msg.data))
    return out


async def stored_history(runtime: ServiceRuntime, schema: str) -> list[CloudEvent]:
    """A schema's events as its event store holds them, in commit order."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT envelope FROM {schema}.events ORDER BY transaction_id, position")
        )
        return [CloudEvent.model_validate(envelope) for envelope in rows.scalars()]


def new_stream() -> str:
    return f"pulse-{uuid4()}"


def ids(events: list[CloudEvent]) -> list[UUID]:
    return [e.id for e in events]
