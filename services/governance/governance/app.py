"""The governance service: `uvicorn governance.app:create_app --factory`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.events import EventRegistry
from concord.http import create_service_app
from concord.membership import CHARTER
from concord.observability import configure_logging
from concord.runtime import ServiceRuntime
from governance import api
from governance.settings import GovernanceSettings


def create_app(settings: GovernanceSettings | None = None) -> FastAPI:
    settings = settings or GovernanceSettings()
    configure_logging(settings.service, settings.log_level)
    registry = EventRegistry(settings.service)
    registry.include(CHARTER)
    runtime = ServiceRuntime(
        settings, registry=registry, migrations=Path(__file__).with_name("migrations")
    )
    return create_service_app(
        runtime,
        title="Concord governance",
        description="The alliance charter: partners, purpose, goals, executive sponsors, "
        "relational expectations and the versioned partnership agreement.",
        routers=[api.router],
    )
