"""The scorecard service: `uvicorn scorecard.app:create_app --factory`."""

from __future__ import annotations

from fastapi import FastAPI

from concord.http import create_service_app
from concord.observability import configure_logging
from concord.runtime import ServiceRuntime
from scorecard import api
from scorecard.projections import KnownAlliances
from scorecard.settings import ScorecardSettings


def create_app(settings: ScorecardSettings | None = None) -> FastAPI:
    settings = settings or ScorecardSettings()
    configure_logging(settings.service, settings.log_level)
    runtime = ServiceRuntime(settings, projections=[KnownAlliances()])
    return create_service_app(
        runtime,
        title="Concord scorecard",
        description="The balanced alliance scorecard. Today: the alliances scorecard knows.",
        routers=[api.router],
    )
