"""The governance service, declared: `uvicorn governance.app:create_app --factory`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.clock import SYSTEM_CLOCK, Clock
from concord.events import EventRegistry
from concord.membership import CHARTER
from concord.service import Service
from governance import api
from governance.settings import GovernanceSettings

EVENTS = EventRegistry("governance")
EVENTS.include(CHARTER)

SERVICE = Service(
    name="governance",
    package="governance",
    port=8002,
    title="Concord governance",
    description="The alliance charter: partners, purpose, goals, executive sponsors, "
    "relational expectations and the versioned partnership agreement.",
    settings=GovernanceSettings,
    migrations=Path(__file__).with_name("migrations"),
    registry=EVENTS,
    routers=[api.router],
)


def create_app(settings: GovernanceSettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    return SERVICE.app(settings, clock)
