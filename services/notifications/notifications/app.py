"""The notifications service: `uvicorn notifications.app:create_app --factory`.
It answers health, metrics and OpenAPI today; its domain arrives with its own issue."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.http import create_service_app
from concord.observability import configure_logging
from concord.runtime import ServiceRuntime
from notifications.settings import NotificationsSettings


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    configure_logging(settings.service, settings.log_level)
    return create_service_app(
        ServiceRuntime(settings, migrations=Path(__file__).with_name("migrations")),
        title="Concord notifications",
        description="Subscriptions to domain events, delivered as signed webhooks, "
        "Slack and Teams messages.",
        routers=[],
    )
