"""Settings every service reads from the environment (prefix `CONCORD_`); each service
subclasses this with its own name and port. The README's table lists every variable."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_", extra="ignore")

    # Names the service's schema and stream, so it is fixed in code, never read from the
    # environment (one shared ConfigMap must not make two services share a schema).
    service: ClassVar[str] = "concord"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/concord"
    database_pool_size: int = 10
    nats_url: str = "nats://127.0.0.1:54222"
    # 3 in production (R3 streams); 1 on a single embedded server.
    nats_replicas: int = 1
    # How long JetStream remembers a Nats-Msg-Id to drop duplicate publishes (seconds).
    nats_duplicate_window: float = 3600.0

    jwt_secret: str | None = "concord-development-secret-not-for-production"
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    log_level: str = "INFO"
    max_body_bytes: int = 1_048_576
    # A read that follows a write in another service waits this long for the projection.
    read_your_writes_wait: float = 2.0
    relay_batch_size: int = 500
    projection_batch_size: int = 256
    # Safety net when no NOTIFY arrives (another replica committed, a notification was lost).
    relay_poll_interval: float = 1.0
