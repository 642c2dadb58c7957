"""The trust_survey service: `uvicorn trust_survey.app:create_app --factory`.
It answers health, metrics and OpenAPI today; its domain arrives with its own issue."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.http import create_service_app
from concord.observability import configure_logging
from concord.runtime import ServiceRuntime
from trust_survey.settings import TrustSurveySettings


def create_app(settings: TrustSurveySettings | None = None) -> FastAPI:
    settings = settings or TrustSurveySettings()
    configure_logging(settings.service, settings.log_level)
    return create_service_app(
        ServiceRuntime(settings, migrations=Path(__file__).with_name("migrations")),
        title="Concord trust survey",
        description="Relational-health surveys answered by people of every partner.",
        routers=[],
    )
