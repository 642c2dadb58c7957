"""The outbox relay: committed events reach JetStream once each, in order, whatever crashes
or outages happen between commit and publish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import StorageType

from concord.bus import stream_name
from concord.eventstore import Checkpoint
from concord.outbox import Relay
from concord.runtime import ServiceRuntime
from tests.conftest import Stack, auth, charter, serve
from tests.integration.conftest import SERVICE, ids, new_stream, pulses, stream_events

STREAM = stream_name(SERVICE)


async def commit(runtime: ServiceRuntime, count: int) -> list:
    written = []
    for _ in range(count):
        stream = new_stream()
        events = pulses(stream, range(2))
        async with runtime.engine.begin() as conn:
            await runtime.store.append(conn, stream, 0, events)
        written.extend(events)
    return written


async def relay_until_published(
    runtime: ServiceRuntime, relay: Relay, total: int, js: JetStreamContext
) -> None:
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(Exception):
                    if (await js.stream_info(STREAM)).state.messages >= total:
                        break
                await asyncio.sleep(0.02)
        assert await relay.drained()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_events_committed_while_no_relay_runs_arrive_once_in_commit_order(
    runtime: ServiceRuntime, js: JetStreamContext
) -> None:
    """A relay killed after the commit and before the publish: the restarted relay sends them."""
    written = await commit(runtime, 5)
    await runtime.bus.connect()
    await relay_until_published(runtime, runtime.relay, len(written), js)
    assert ids(await stream_events(js, STREAM)) == ids(written)


async def test_a_relay_that_dies_after_publishing_but_before_its_checkpoint_duplicates_nothing(
    runtime: ServiceRuntime, js: JetStreamContext
) -> None:
    written = await commit(runtime, 3)
    await runtime.bus.connect()
    await runtime.bus.ensure_stream(SERVICE)

    # The first relay publishes the batch, then dies before recording how far it got.
    async with runtime.engine.connect() as conn:
        batch = await runtime.relay.read_batch(conn, Checkpoint())
        await runtime.relay.publish(batch)
    async with runtime.engine.connect() as conn:
        assert await runtime.relay.checkpoint(conn) == Checkpoint()

    # Its successor starts from the old checkpoint and publishes the same events again.
    successor = Relay(runtime.engine, runtime.store, runtime.bus, service=SERVICE)
    await relay_until_published(runtime, successor, len(written), js)
    await asyncio.sleep(0.1)
    assert ids(await stream_events(js, STREAM)) == ids(written)  # JetStream dropped the repeats


async def test_the_stream_is_file_backed_and_deduplicates_by_event_id(
    runtime: ServiceRuntime, js: JetStreamContext
) -> None:
    await runtime.bus.connect()
    await runtime.bus.ensure_stream(SERVICE)
    info = await js.stream_info(STREAM)
    assert info.config.storage == StorageType.FILE
    assert info.config.subjects == [f"concord.{SERVICE}.>"]
    assert (info.config.duplicate_window or 0) >= 3600


async def test_commands_succeed_while_nats_is_down_and_their_events_follow_when_it_returns(
    stack: Stack, settings: Callable[..., Any], js: JetStreamContext
) -> None:
    from governance.app import create_app
    from governance.settings import GovernanceSettings
    from scorecard.app import create_app as create_scorecard
    from scorecard.settings import ScorecardSettings

    async with (
        serve(create_app(settings(GovernanceSettings))) as governance,
        serve(create_scorecard(settings(ScorecardSettings))) as scorecard,
    ):
        first = await governance.post("/alliances", json=charter(), headers=auth())
        assert first.status_code == 201
        assert (
            await scorecard.get(
                f"/alliances/{first.json()['id']}", params={"min_version": 1}, headers=auth()
            )
        ).status_code == 200

        stack.nats.stop()
        try:
            during = [
                await governance.post(
                    "/alliances", json=charter(name=f"Outage {i}"), headers=auth()
                )
                for i in range(3)
            ]
            assert [r.status_code for r in during] == [201, 201, 201]
            ready = await governance.get("/readyz")  # still takes traffic, and says why not ok
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "degraded",
                "checks": {"postgres": True, "nats": False},
            }
        finally:
            stack.nats.start()

        for response in during:
            alliance_id = response.json()["id"]
            async with asyncio.timeout(15):
                while True:
                    read = await scorecard.get(f"/alliances/{alliance_id}", headers=auth())
                    if read.status_code == 200:
                        break
            assert read.json()["name"].startswith("Outage")

    reconnected = await stream_events(js, stream_name("governance"))
    assert len(reconnected) == 4
    assert len({e.id for e in reconnected}) == 4


async def test_a_replica_that_does_not_lead_the_relay_wakes_the_one_that_does(
    settings: Callable[..., Any], js: JetStreamContext
) -> None:
    """Two governance replicas share one database; one leads the relay. A command answered
    by the other must still reach NATS at once (by NOTIFY), not at the next poll."""
    from governance.app import create_app
    from governance.settings import GovernanceSettings

    slow_poll = settings(GovernanceSettings, relay_poll_interval=60.0)
    first, second = create_app(slow_poll), create_app(slow_poll)
    async with serve(first) as one, serve(second) as two:
        async with asyncio.timeout(10):
            while not (
                first.state.runtime.relay.is_leading or second.state.runtime.relay.is_leading
            ):
                await asyncio.sleep(0.02)
        follower = two if first.state.runtime.relay.is_leading else one
        created = await follower.post("/alliances", json=charter(), headers=auth())
        assert created.status_code == 201
        async with asyncio.timeout(5):  # far below the 60 s poll
            while True:
                with contextlib.suppress(Exception):
                    if (await js.stream_info(stream_name("governance"))).state.messages == 1:
                        break
                await asyncio.sleep(0.02)
