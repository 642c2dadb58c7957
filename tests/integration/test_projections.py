"""Projections: a redelivered event changes nothing, and a rebuild from the event history
gives the same read model, byte for byte."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY
from sqlalchemy import text

from concord.bus import stream_name
from concord.events import CloudEvent
from concord.membership import CHARTER_EVENTS
from concord.projections import ReadModel
from concord.runtime import ServiceRuntime
from governance.settings import GovernanceSettings
from scorecard.settings import ScorecardSettings
from tests.conftest import Stack, auth, charter, nats_as, process_env, serve
from tests.integration.conftest import stored_history


@pytest.fixture
async def governance_history(settings: Callable[..., Any]) -> AsyncIterator[list[str]]:
    """Governance's stream with a few alliances and charter changes in it; the service is
    stopped again, so the test owns what happens next."""
    from governance.app import create_app

    created = []
    async with serve(create_app(settings(GovernanceSettings))) as governance:
        for i in range(4):
            alliance = (
                await governance.post(
                    "/alliances", json=charter(name=f"Alliance {i}"), headers=auth()
                )
            ).json()
            base = f"/alliances/{alliance['id']}"
            await governance.post(
                f"{base}/partners", json={"org_id": f"p{i}", "name": f"P{i}"}, headers=auth()
            )
            await governance.post(
                f"{base}/executive-sponsors",
                json={"org_id": "acme", "name": f"Sponsor {i}"},
                headers=auth(),
            )
            await governance.post(
                f"{base}/relational-expectations",
                json={"statement": f"We answer each other within {i + 1} days"},
                headers=auth(),
            )
            await governance.post(
                f"{base}/agreement-versions",
                json={"summary": "First", "text": "How we work", "effective_from": "2026-01-01"},
                headers=auth(),
            )
            created.append(alliance["id"])
    yield created


@pytest.fixture
async def scorecard_runtime(settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    runtime = ServiceRuntime(settings(ScorecardSettings))
    await runtime.install()
    await runtime.bus.connect()
    yield runtime
    await runtime.bus.close()
    await runtime.engine.dispose()


async def read_model(runtime: ServiceRuntime) -> list[str]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT k::text FROM scorecard.alliances k ORDER BY alliance_id")
        )
        return list(rows.scalars())


async def all_messages(js: JetStreamContext) -> list:
    sub = await js.pull_subscribe(
        "concord.governance.alliance.>",
        stream=stream_name("governance"),
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30),
    )
    msgs = await sub.fetch(1000, timeout=2)
    await sub.unsubscribe()
    return msgs


@pytest.fixture
async def js(nats_url: str, stack: Stack) -> AsyncIterator[JetStreamContext]:
    nc = await nats_as(stack)
    yield nc.jetstream()
    await nc.close()


async def test_a_redelivered_batch_changes_nothing(
    governance_history: list[str], scorecard_runtime: ServiceRuntime, js: JetStreamContext
) -> None:
    runner = scorecard_runtime.runners["alliances"]
    msgs = await all_messages(js)
    assert len(msgs) == 20

    async with scorecard_runtime.engine.connect() as conn:
        assert await runner.apply_batch(conn, msgs) == 20
        first = await read_model(scorecard_runtime)
        assert (
            await runner.apply_batch(conn, msgs) == 0
        )  # every sequence is at or below the checkpoint
        assert await runner.apply_batch(conn, msgs[5:9]) == 0
    assert await read_model(scorecard_runtime) == first
    assert len(first) == 4


async def test_rebuild_replays_history_into_the_same_read_model(
    governance_history: list[str], scorecard_runtime: ServiceRuntime, js: JetStreamContext
) -> None:
    runner = scorecard_runtime.runners["alliances"]
    async with scorecard_runtime.engine.connect() as conn:
        await runner.apply_batch(conn, await all_messages(js))
    live = await read_model(scorecard_runtime)

    async with scorecard_runtime.engine.begin() as conn:  # damage the read model
        await conn.execute(text("UPDATE scorecard.alliances SET name = 'wrong'"))
    report = await runner.rebuild(progress=False)

    assert report.events == 20
    assert report.events_per_second > 0
    assert await read_model(scorecard_runtime) == live
    async with scorecard_runtime.engine.connect() as conn:
        assert await runner.checkpoint(conn) == 20


async def test_concord_rebuild_pauses_the_live_projection_and_it_resumes_after(
    governance_history: list[str], settings: Callable[..., Any], database_url: str, nats_url: str
) -> None:
    """SREs rebuild with `concord rebuild` while scorecard keeps running."""
    from governance.app import create_app
    from scorecard.app import create_app as create_scorecard

    async with (
        serve(create_app(settings(GovernanceSettings))) as governance,
        # Catching up the whole history as it starts can take longer than a read's usual
        # wait on a loaded machine: this test is about the rebuild, not that wait.
        serve(
            create_scorecard(settings(ScorecardSettings, read_your_writes_wait=15.0))
        ) as scorecard,
    ):
        for alliance_id in governance_history:  # caught up from the durable consumer
            assert (
                await scorecard.get(
                    f"/alliances/{alliance_id}", params={"min_version": 1}, headers=auth()
                )
            ).status_code == 200

        env = process_env(database_url, nats_url, "scorecard")
        rebuild = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "concord.cli",
            "rebuild",
            "scorecard",
            "alliances",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(rebuild.communicate(), 60)
        assert rebuild.returncode == 0, output.decode()
        assert "rebuilt alliances: 20 events" in output.decode()

        fresh = (
            await governance.post("/alliances", json=charter(name="After rebuild"), headers=auth())
        ).json()
        read = await scorecard.get(
            f"/alliances/{fresh['id']}", params={"min_version": fresh["version"]}, headers=auth()
        )
        assert read.status_code == 200
        assert read.json()["name"] == "After rebuild"
        for alliance_id in governance_history:
            assert (
                await scorecard.get(
                    f"/alliances/{alliance_id}", params={"min_version": 1}, headers=auth()
                )
            ).status_code == 200


async def test_projection_lag_and_progress_are_exported_as_metrics(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient
) -> None:
    alliance = (await governance.post("/alliances", json=charter(), headers=auth())).json()
    read = await scorecard.get(
        f"/alliances/{alliance['id']}", params={"min_version": 1}, headers=auth()
    )
    assert read.status_code == 200
    labels = {"service": "scorecard", "projection": "alliances"}
    applied = REGISTRY.get_sample_value("concord_projection_events_total", labels)
    lag = REGISTRY.get_sample_value("concord_projection_lag_seconds", labels)
    assert applied is not None and applied >= 1
    assert lag is not None and 0 <= lag < 5
    exposed = (await scorecard.get("/metrics")).text
    assert 'concord_projection_lag_seconds{projection="alliances",service="scorecard"}' in exposed


async def project(runtime: ServiceRuntime, events: list[CloudEvent], *, times: int) -> None:
    """Through the projection's own `apply` (no intake: the read model alone must be
    idempotent), each event `times` times in a row."""
    alliances = runtime.alliances
    async with runtime.engine.begin() as conn:
        model = ReadModel(conn)
        for event in events:
            for _ in range(times):
                if alliances.events.knows(event):
                    await alliances.apply(model, alliances.events.recorded(event))
                else:
                    await alliances.apply_other(model, event)
        await model.flush()


async def test_every_charter_event_applied_twice_leaves_alliances_as_applied_once(
    governance_history: list[str], scorecard_runtime: ServiceRuntime
) -> None:
    history = await stored_history(scorecard_runtime, "governance")
    last = history[-1]
    unknown = last.model_copy(  # a type a newer governance publishes: `apply_other`
        update={
            "id": uuid4(),
            "type": "concord.governance.alliance.steering_committee_formed.v1",
            "streamversion": last.streamversion + 1,
        }
    )
    history.append(unknown)
    names = {e.name for e in history}
    assert names == {e.event_name() for e in CHARTER_EVENTS} | {"steering_committee_formed"}

    await project(scorecard_runtime, history, times=1)
    once = await read_model(scorecard_runtime)
    await project(scorecard_runtime, history, times=1)  # the whole history again
    assert await read_model(scorecard_runtime) == once
    async with scorecard_runtime.engine.begin() as conn:
        await conn.execute(text("TRUNCATE scorecard.alliances"))
    await project(scorecard_runtime, history, times=2)  # each event twice in a row
    assert await read_model(scorecard_runtime) == once
    assert len(once) == 4
