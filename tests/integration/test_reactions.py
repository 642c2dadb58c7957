"""Reactions: each event is reacted to exactly once in effect, whatever is redelivered or
killed, and an event whose handler keeps failing is parked for an operator, not retried for
ever in front of the others."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY as METRICS

from concord import ops
from concord.bus import stream_name
from concord.clock import ManualClock
from concord.eventstore import Checkpoint
from concord.http import create_service_app
from tests.conftest import auth, serve
from tests.integration.meters import (
    ECHO,
    FAILING,
    START,
    events_of,
    eventually,
    meter_runtime,
    running,
    take,
)

ECHOED = "concord.kerneltest.meter.reading_echoed.v1"
TAKEN = "concord.kerneltest.meter.reading_taken.v1"


@pytest.fixture(autouse=True)
def nothing_fails() -> AsyncIterator[None]:
    FAILING.clear()
    yield
    FAILING.clear()


def echoed_readings(events: list[dict[str, Any]]) -> list[int]:
    return sorted(e["data"]["reading"] for e in events)


async def test_every_event_is_reacted_to_once_with_its_cause_in_the_envelope(
    settings: Callable[..., Any],
) -> None:
    async with running(meter_runtime(settings, ManualClock(START))) as runtime:
        streams = [f"meter-{uuid4()}" for _ in range(3)]
        for number, stream in enumerate(streams):
            for reading in range(1, 4):
                await take(runtime, stream, number * 10 + reading)

        echoes = await eventually(lambda: _at_least(runtime, ECHOED, 9))
        assert echoed_readings(echoes) == [1, 2, 3, 11, 12, 13, 21, 22, 23]
        taken = {e["id"]: e for e in await events_of(runtime, TAKEN)}
        for echo in echoes:
            cause = taken[echo["causationid"]]  # caused by the event it reacts to
            assert cause["data"]["reading"] == echo["data"]["reading"]
            assert echo["subject"] == f"echo-{cause['subject']}"
            assert echo["correlationid"] == cause["correlationid"] == "req-1"
            assert (echo["actorsub"], echo["actororg"]) == ("kerneltest/reaction/echo", None)


async def test_a_redelivered_event_appends_nothing_twice(
    settings: Callable[..., Any], js: JetStreamContext
) -> None:
    async with running(meter_runtime(settings, ManualClock(START))) as runtime:
        stream = f"meter-{uuid4()}"
        for reading in (1, 2):
            await take(runtime, stream, reading)
        await eventually(lambda: _at_least(runtime, ECHOED, 2))

        runner = runtime.reactions["echo"]
        info = await js.stream_info(stream_name("kerneltest"))
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream_name("kerneltest"), sequence)
            assert msg.data is not None
            if TAKEN.encode() in msg.data:  # JetStream delivers it again
                assert await runner.handle(sequence, msg.data) is False
        assert echoed_readings(await events_of(runtime, ECHOED)) == [1, 2]


async def test_a_reaction_killed_between_commit_and_ack_appends_nothing_twice(
    settings: Callable[..., Any],
) -> None:
    """The first replica reacts and commits but dies before it acks; the replica that takes
    over starts from the checkpoint committed with the reaction's events."""
    clock = ManualClock(START)
    first = meter_runtime(settings, clock)
    await first.install()
    stream = f"meter-{uuid4()}"
    for reading in (1, 2, 3):
        await take(first, stream, reading)
    await first.bus.connect()
    await first.bus.ensure_stream("kerneltest")
    async with first.engine.connect() as conn:
        assert (await first.relay.pass_once(conn, Checkpoint()))[1] == 3
    runner = first.reactions["echo"]
    sub = await first.bus.durable(
        "kerneltest", runner.durable, ECHO.subjects, after=0, max_ack_pending=64
    )
    delivered = await sub.fetch(3, timeout=5)
    for msg in delivered[:2]:
        assert await runner.handle(msg.metadata.sequence.stream, msg.data)  # committed...
    await first.bus.close()  # ...and killed before any ack
    await first.engine.dispose()

    async with running(meter_runtime(settings, clock)) as second:
        echoes = await eventually(lambda: _at_least(second, ECHOED, 3))
        assert echoed_readings(echoes) == [1, 2, 3]
        await take(second, stream, 4)
        assert echoed_readings(await eventually(lambda: _at_least(second, ECHOED, 4))) == [
            1,
            2,
            3,
            4,
        ]


async def test_a_failing_event_is_parked_the_others_flow_and_an_operator_retries_it(
    settings: Callable[..., Any],
) -> None:
    FAILING.add(13)
    runtime = meter_runtime(settings, ManualClock(START))
    app = create_service_app(runtime, title="kernel test", description="", routers=[])
    async with serve(app) as client:
        stream = f"meter-{uuid4()}"
        for reading in (1, 13, 2):
            await take(runtime, stream, reading)
        await eventually(lambda: _at_least(runtime, ECHOED, 2))
        parked = await eventually(lambda: _parked(runtime))
        [event] = parked.reactions
        assert (event.reaction, event.attempts) == ("echo", 3)
        assert "the echo of 13 fails" in event.error
        assert echoed_readings(await events_of(runtime, ECHOED)) == [1, 2]
        assert (
            METRICS.get_sample_value(
                "concord_parked_work", {"service": "kerneltest", "kind": "reaction"}
            )
            == 1
        )

        listed = await client.get("/ops/parked", headers=auth(roles=("operator",)))
        assert listed.status_code == 200
        assert listed.json()["reactions"][0]["sequence"] == event.sequence
        manager = await client.get("/ops/parked", headers=auth())
        assert manager.status_code == 403
        retry = f"/ops/parked/reactions/echo/{event.sequence}/retry"
        still = await client.post(retry, headers=auth(roles=("operator",)))
        assert still.status_code == 409  # still failing: still parked
        assert (await ops.parked(runtime)).reactions[0].attempts == 4

        FAILING.clear()  # the bug is fixed
        retried = await client.post(retry, headers=auth(roles=("operator",)))
        assert retried.status_code == 200, retried.text
        assert echoed_readings(await events_of(runtime, ECHOED)) == [1, 2, 13]
        assert (await ops.parked(runtime)).reactions == []
        again = await client.post(retry, headers=auth(roles=("operator",)))
        assert again.status_code == 404
        assert echoed_readings(await events_of(runtime, ECHOED)) == [1, 2, 13]
        assert (
            METRICS.get_sample_value(
                "concord_parked_work", {"service": "kerneltest", "kind": "reaction"}
            )
            == 0
        )


async def test_a_message_no_relay_published_is_parked_at_once_and_the_others_flow(
    settings: Callable[..., Any], js: JetStreamContext
) -> None:
    async with running(meter_runtime(settings, ManualClock(START))) as runtime:
        stream = f"meter-{uuid4()}"
        await take(runtime, stream, 1)
        await eventually(lambda: _at_least(runtime, ECHOED, 1))
        garbage = await js.publish(TAKEN, b"not an event", headers={"Nats-Msg-Id": "garbage"})
        await take(runtime, stream, 2)

        echoes = await eventually(lambda: _at_least(runtime, ECHOED, 2))
        assert echoed_readings(echoes) == [1, 2]
        [event] = (await eventually(lambda: _parked(runtime))).reactions
        assert (event.sequence, event.attempts) == (garbage.seq, 1)  # not retried: pointless
        assert event.error.startswith("ValueError: unreadable")


async def _at_least(runtime: Any, event_type: str, count: int) -> list[dict[str, Any]] | None:
    found = await events_of(runtime, event_type)
    return found if len(found) >= count else None


async def _parked(runtime: Any) -> ops.ParkedWork | None:
    parked = await ops.parked(runtime)
    return parked if parked.reactions else None
