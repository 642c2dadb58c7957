"""The notifications service, declared: `uvicorn notifications.app:create_app --factory`.
It answers health, metrics and OpenAPI today; its domain arrives with its own issue."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from concord.clock import SYSTEM_CLOCK, Clock
from concord.service import Service
from notifications.settings import NotificationsSettings

SERVICE = Service(
    name="notifications",
    package="notifications",
    port=8004,
    title="Concord notifications",
    description="Subscriptions to domain events, delivered as signed webhooks, "
    "Slack and Teams messages.",
    settings=NotificationsSettings,
    migrations=Path(__file__).with_name("migrations"),
)


def create_app(
    settings: NotificationsSettings | None = None, clock: Clock = SYSTEM_CLOCK
) -> FastAPI:
    return SERVICE.app(settings, clock)
