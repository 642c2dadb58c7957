"""Settings every service reads from the environment (prefix `CONCORD_`); each service
subclasses this with its own name. The README's table lists every variable."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_", extra="ignore")

    # Names the service's schema and stream, so it is fixed in code, never read from the
    # environment (one shared ConfigMap must not make two services share a schema).
    service: ClassVar[str] = "concord"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/concord"
    database_pool_size: int = 10
    nats_url: str = "nats://127.0.0.1:54222"
    # This service's own NATS user: it may publish only its own events (`concord.bus`).
    # `concord run` makes one per service under `.concord/`.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    # 3 in production (R3 streams); 1 on a single embedded server.
    nats_replicas: int = 1
    # How long JetStream remembers a Nats-Msg-Id to drop duplicate publishes (seconds).
    nats_duplicate_window: float = 3600.0

    # Production verifies RS256 tokens from a JWKS URL; the embedded default (`make run`)
    # and tests use an HS256 secret. With a JWKS URL set, the secret is ignored, and the
    # issuer and audience must be set (production).
    jwt_secret: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Seconds allowed for the identity provider's clock to differ from ours, on exp, nbf
    # and iat; up to five minutes, as Kerberos allows.
    jwt_leeway: float = Field(default=30.0, ge=0, le=300)
    # The longest a token may live (exp - iat, seconds), so a leaked token does not work
    # for years; every token must carry iat, as RFC 9068 has access tokens do.
    jwt_max_lifetime: float = Field(default=24 * 3600.0, gt=0)

    log_level: str = "INFO"
    max_body_bytes: int = 1_048_576
    # A read that follows a write in another service waits this long for the projection.
    read_your_writes_wait: float = 2.0
    relay_batch_size: int = 500
    projection_batch_size: int = 256
    # Safety net when no NOTIFY arrives (another replica committed, a notification was lost).
    relay_poll_interval: float = 1.0
    reaction_batch_size: int = 64
    timer_batch_size: int = 500
    # How often the scheduler looks for timers another replica scheduled (seconds).
    timer_poll_interval: float = 1.0
    # A reaction or timer that fails this many times in a row is parked for an operator;
    # the delay between attempts doubles from `work_retry_delay` seconds.
    work_max_attempts: int = 5
    work_retry_delay: float = 0.2
    # The relay, projections, reactions and timers run in this process (the embedded
    # default), or only in `concord worker <service>` (production: API replicas set false).
    run_workers: bool = True

    # Long transactions (ADR 0001): the relays of every service on the cluster wait for the
    # oldest open transaction. The server ends a session of this service left idle inside a
    # transaction this long (seconds; 0 leaves the server's or role's setting alone).
    database_idle_in_transaction_timeout: float = 60.0
    # A relay held back this long (seconds) by an open transaction names it in a warning.
    relay_held_back_warning_after: float = 10.0
    # Events a rebuild applies per transaction: each commit lets the relays move on.
    projection_rebuild_batch_size: int = 1000

    # --- secrets at rest, and logs a person reads (`make run`) ---
    # Fernet keys, comma-separated: the first seals, every one opens (rotation: put a new
    # key first). No default: a service that keeps secrets refuses to start without them;
    # `make run` makes one per checkout (`.concord/secrets-keys`).
    secrets_keys: SecretStr | None = None
    # JSON lines for machines (the default); `human` for a terminal (`make run` sets it).
    log_format: Literal["json", "human"] = "json"

    @model_validator(mode="after")
    def _tokens_can_be_verified(self) -> ServiceSettings:
        if not self.jwt_jwks_url and not self.jwt_secret:
            raise ValueError(
                "set CONCORD_JWT_JWKS_URL (production) or CONCORD_JWT_SECRET (development)"
            )
        if self.jwt_jwks_url and not (self.jwt_issuer and self.jwt_audience):
            # Without them, a token the identity provider signed for any other application
            # of the same tenant would be let in.
            raise ValueError(
                "with CONCORD_JWT_JWKS_URL (production), set CONCORD_JWT_ISSUER and "
                "CONCORD_JWT_AUDIENCE too: the issuer and audience of Concord's tokens"
            )
        return self
