"""The kernel's tables, as every service schema holds them, declared once as SQLAlchemy Core
`Table`s. They say what the schema is today; the migrations (`concord.migrations`) are how a
live schema gets there, and a test holds the two to each other (autogenerate finds no
difference). Change a table here and add a kernel revision in the same change.

Queries still use `text()` with schema-qualified names; these declarations are the
schema's single description, not (yet) the way queries are written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

NOW = text("now()")


def timestamp(name: str, *, nullable: bool = False, now: bool = False) -> Column[Any]:
    return Column(
        name, DateTime(timezone=True), nullable=nullable, server_default=NOW if now else None
    )


def add_kernel_tables(metadata: MetaData) -> None:
    """Add the kernel's tables to a service's `MetaData(schema=<service schema>)`."""
    Table(
        "events",
        metadata,
        Column("position", BigInteger, primary_key=True, autoincrement=True),
        # The writer's transaction: readers order by it for commit safety (eventstore).
        Column(
            "transaction_id",
            BigInteger,
            nullable=False,
            server_default=text("(pg_current_xact_id())::text::bigint"),
        ),
        Column("event_id", UUID, nullable=False),
        Column("stream_id", Text, nullable=False),
        Column("stream_version", Integer, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("alliance_id", Text),
        timestamp("occurred_at"),
        Column("envelope", JSONB, nullable=False),
        UniqueConstraint("event_id", name="events_event_id_key"),
        UniqueConstraint("stream_id", "stream_version", name="events_stream_version"),
        Index("events_commit_order", "transaction_id", "position"),
    )
    Table(
        "relay_checkpoint",
        metadata,
        Column("singleton", Boolean, primary_key=True, server_default=text("true")),
        Column("transaction_id", BigInteger, nullable=False),
        Column("position", BigInteger, nullable=False),
        timestamp("updated_at", now=True),
        CheckConstraint("singleton", name="relay_checkpoint_singleton_check"),
    )
    Table(
        "projection_checkpoints",
        metadata,
        Column("projection", Text, primary_key=True),
        Column("last_sequence", BigInteger, nullable=False),
        timestamp("paused_until", nullable=True),
        timestamp("updated_at", now=True),
        # Where a valid event's `apply` failed (a bug): the projection retries it until fixed.
        Column("stopped_sequence", BigInteger),
        Column("stopped_error", Text),
        timestamp("stopped_since", nullable=True),
    )
    # The last version of each stream a projection applied: the next must follow it (intake).
    Table(
        "projection_streams",
        metadata,
        Column("projection", Text, nullable=False),
        Column("stream_id", Text, nullable=False),
        Column("version", Integer, nullable=False),
        PrimaryKeyConstraint("projection", "stream_id"),
    )
    # Messages a projection set aside: unreadable, invalid, foreign, or ahead of their stream.
    # A dropped one stays, so a rebuild skips it again.
    Table(
        "projection_parked",
        metadata,
        Column("projection", Text, nullable=False),
        Column("sequence", BigInteger, nullable=False),
        Column("subject", Text, nullable=False),
        Column("message", LargeBinary, nullable=False),
        Column("reason", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("event_id", Text),
        Column("event_type", Text),
        Column("stream_id", Text),
        Column("stream_version", Integer),
        timestamp("parked_at", now=True),
        timestamp("dropped_at", nullable=True),
        PrimaryKeyConstraint("projection", "sequence"),
        Index(
            "projection_parked_by_stream",
            "projection",
            "stream_id",
            "stream_version",
            postgresql_where=text("dropped_at IS NULL"),
        ),
    )
    Table(
        "idempotency_keys",
        metadata,
        Column("caller", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("request_hash", Text, nullable=False),
        Column("status_code", Integer),
        Column("body", JSONB),
        Column("headers", JSONB),
        timestamp("created_at", now=True),
        PrimaryKeyConstraint("caller", "key"),
    )
    # A timer is keyed within its stream: scheduling the same key again moves it.
    Table(
        "timers",
        metadata,
        Column("stream_id", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("timer_id", UUID, nullable=False),
        Column("name", Text, nullable=False),
        Column("alliance_id", Text),
        Column("data", JSONB, nullable=False),
        timestamp("due_at"),
        Column("correlation_id", Text),
        Column("scheduled_by", Text),
        timestamp("fired_at", nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        timestamp("parked_at", nullable=True),
        PrimaryKeyConstraint("stream_id", "key"),
        Index(
            "timers_due",
            "due_at",
            postgresql_where=text("fired_at IS NULL AND parked_at IS NULL"),
        ),
    )
    Table(
        "reaction_checkpoints",
        metadata,
        Column("reaction", Text, primary_key=True),
        Column("last_sequence", BigInteger, nullable=False),
        timestamp("updated_at", now=True),
    )
    Table(
        "reaction_failures",
        metadata,
        Column("reaction", Text, nullable=False),
        Column("sequence", BigInteger, nullable=False),
        Column("event_id", Text),
        Column("event_type", Text, nullable=False),
        Column("envelope", JSONB, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("error", Text, nullable=False),
        timestamp("first_failed_at", now=True),
        timestamp("last_failed_at", now=True),
        timestamp("parked_at", nullable=True),
        PrimaryKeyConstraint("reaction", "sequence"),
    )
    # The membership read model (`concord.membership.Alliances`): every service has one.
    Table(
        "alliances",
        metadata,
        Column("alliance_id", UUID, primary_key=True),
        Column("name", Text, nullable=False),
        Column("purpose", Text, nullable=False),
        Column("goals", JSONB, nullable=False),
        Column("partners", JSONB, nullable=False),
        Column("partner_orgs", ARRAY(Text), nullable=False),
        Column("executive_sponsors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("agreement_version", Integer, nullable=False, server_default=text("0")),
        Column("version", Integer, nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        Index("alliances_partners", "partner_orgs", postgresql_using="gin"),
    )


def kernel_metadata(schema: str) -> MetaData:
    """A schema with only the kernel's tables (a service with no tables of its own yet)."""
    metadata = MetaData(schema=schema)
    add_kernel_tables(metadata)
    return metadata
