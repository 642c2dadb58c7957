"""The scorecard service: `uvicorn scorecard.app:create_app --factory`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.clock import SYSTEM_CLOCK, Clock
from concord.http import create_service_app
from concord.observability import configure_logging
from concord.runtime import ServiceRuntime
from scorecard import api, integrations, policies
from scorecard.domain.scorecard import EVENT_REGISTRY
from scorecard.projections import ScorecardBoard
from scorecard.settings import ScorecardSettings


def create_app(settings: ScorecardSettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    settings = settings or ScorecardSettings()
    configure_logging(settings.service, settings.log_level)
    runtime = ServiceRuntime(
        settings,
        registry=EVENT_REGISTRY,
        projections=[ScorecardBoard()],
        reactions=policies.REACTIONS,
        timers=policies.TIMERS,
        clock=clock,
        migrations=Path(__file__).with_name("migrations"),
    )
    return create_service_app(
        runtime,
        title="Concord scorecard",
        description="The balanced alliance scorecard: KPIs in five dimensions with targets, "
        "actuals, status and direction; the strategy map; initiatives; the benefits ledger "
        "and the balance of benefits; and CRM pipeline ingestion.",
        routers=[api.router, integrations.router],
    )
