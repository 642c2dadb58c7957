"""Production's arrangement: API replicas run no workers, and each service's relay,
projections, reactions and timers run in a worker of their own (`concord worker`). (The
embedded default, everything in the API process, is what every other test runs.)"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import text

from concord.clock import ManualClock
from concord.devstack import free_port
from concord.runtime import ServiceRuntime
from governance.app import SERVICE as GOVERNANCE
from governance.settings import GovernanceSettings
from scorecard.app import SERVICE as SCORECARD
from scorecard.settings import ScorecardSettings
from tests.conftest import (
    BEFORE_THE_PERIODS,
    auth,
    charter,
    process_env,
    serve,
    until_ready,
)
from tests.integration.meters import eventually
from tests.integration.scorecard.conftest import known_to


async def test_api_replicas_run_no_workers_and_the_workers_do_all_the_work(
    settings: Callable[..., Any],
) -> None:
    clock = ManualClock(BEFORE_THE_PERIODS)
    api_only = {"run_workers": False}
    scorecard_api = SCORECARD.app(settings(ScorecardSettings, **api_only), clock)
    async with (
        serve(GOVERNANCE.app(settings(GovernanceSettings, **api_only))) as governance,
        serve(scorecard_api) as scorecard,
        serve(GOVERNANCE.worker_app(settings(GovernanceSettings, **api_only))),
        serve(SCORECARD.worker_app(settings(ScorecardSettings, **api_only), clock)),
    ):
        runtime = scorecard_api.state.runtime
        created = await governance.post("/alliances", json=charter(), headers=auth())
        assert created.status_code == 201
        alliance = created.json()
        await known_to(scorecard, alliance)  # projected by the worker, read from the API
        base = f"/alliances/{alliance['id']}/scorecard"
        assert (await scorecard.post(base, json={"currency": "EUR"}, headers=auth())).is_success
        kpi = await scorecard.post(
            f"{base}/kpis",
            json={
                "name": "Joint revenue",
                "dimension": "commercial",
                "kind": "lagging",
                "unit": "EUR",
                "currency": "EUR",
                "owner_org": "acme",
            },
            headers=auth(),
        )
        targets = f"{base}/kpis/{kpi.json()['id']}/targets"
        set_target = await scorecard.post(
            targets, json={"period": "2026-01", "target": "100"}, headers=auth()
        )
        assert set_target.is_success, set_target.text
        added = await governance.post(
            f"/alliances/{alliance['id']}/partners",
            json={"org_id": "initech", "name": "Initech"},
            headers=auth(),
        )
        assert added.is_success

        clock.advance(timedelta(days=120))  # past January's end and its grace days
        await eventually(lambda: _stored(runtime, "kpi_actual_missing"))  # the worker's timer
        await eventually(lambda: _stored(runtime, "partner_welcomed"))  # the worker's reaction
        # The API process led nothing: no relay, projection, reaction or timer of its own.
        assert not runtime.relay.is_leading and not runtime.scheduler.is_leading
        assert all(not task.get_name().endswith("relay") for task in runtime._tasks)
        assert len(runtime._tasks) == 1  # its NATS connection only
        welcomed = REGISTRY.get_sample_value(
            "concord_reaction_events_total",
            {"service": "scorecard", "reaction": "partner_joins_balance"},
        )
        assert welcomed is not None and welcomed >= 1


async def _stored(runtime: ServiceRuntime, name: str) -> bool:
    async with runtime.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM scorecard.events WHERE event_type LIKE :type"),
            {"type": f"concord.scorecard.scorecard.{name}.%"},
        )
        return bool(found.scalar_one())


async def test_concord_worker_runs_as_a_process_and_stops_on_sigterm(
    database_url: str, nats_url: str
) -> None:
    port = free_port()
    env = process_env(database_url, nats_url, "scorecard")
    worker = subprocess.Popen(
        [sys.executable, "-m", "concord.cli", "worker", "scorecard", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await until_ready(client)
            metrics = (await client.get("/metrics")).text
            assert 'concord_parked_work{kind="timer",service="scorecard"}' in metrics
            # A worker serves no API of its own.
            alliances = await client.get("/alliances/7f1d0c3e-3b7e-4a53-9d2a-1b1f0b1c2d3e")
            assert alliances.status_code == 404
            parked = await client.get("/ops/parked", headers=auth(roles=("operator",)))
            assert parked.json() == {"reactions": [], "timers": [], "messages": [], "stopped": []}
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
    finally:
        if worker.poll() is None:
            worker.kill()
    log = worker.stdout.read().decode() if worker.stdout else ""
    assert code in (0, -signal.SIGTERM), log
    assert "leading relay:scorecard" in log
