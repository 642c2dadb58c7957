"""The trust-survey service, declared: `uvicorn trust_survey.app:create_app --factory`.
It answers health, metrics and OpenAPI today; its domain arrives with its own issue."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.clock import SYSTEM_CLOCK, Clock
from concord.service import Service
from trust_survey.settings import TrustSurveySettings

SERVICE = Service(
    name="trust-survey",
    package="trust_survey",
    port=8003,
    title="Concord trust survey",
    description="Relational-health surveys answered by people of every partner.",
    settings=TrustSurveySettings,
    migrations=Path(__file__).with_name("migrations"),
)


def create_app(settings: TrustSurveySettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    return SERVICE.app(settings, clock)
