"""The scorecard service, declared: `uvicorn scorecard.app:create_app --factory`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.clock import SYSTEM_CLOCK, Clock
from concord.secrets import SealedColumn
from concord.service import Service
from scorecard import api, integrations, policies
from scorecard.domain.events import EVENT_REGISTRY
from scorecard.projections import ScorecardBoard
from scorecard.settings import ScorecardSettings

SERVICE = Service(
    name="scorecard",
    package="scorecard",
    port=8001,
    title="Concord scorecard",
    description="The balanced alliance scorecard: KPIs in five dimensions with targets, "
    "actuals, status and direction; the strategy map; initiatives; the benefits ledger "
    "and the balance of benefits; and CRM pipeline ingestion.",
    settings=ScorecardSettings,
    migrations=Path(__file__).with_name("migrations"),
    registry=EVENT_REGISTRY,
    routers=[api.router, integrations.router],
    projections=lambda: [ScorecardBoard()],
    reactions=policies.REACTIONS,
    timers=policies.TIMERS,
    sealed=[SealedColumn("crm_credentials", key="key_id", column="sealed_secret")],
)


def create_app(settings: ScorecardSettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    return SERVICE.app(settings, clock)
