"""Event store, outbox position, projection checkpoints and idempotency keys

The kernel's tables as the start-up DDL made them before migrations (commit 5a1929d).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "kernel_0001"
down_revision = None
branch_labels = ("kernel",)
depends_on = None


def upgrade(schema: str) -> None:
    now = sa.text("now()")
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=True),
        # transaction_id orders readers by commit safety (see eventstore.read_committed).
        sa.Column(
            "transaction_id",
            sa.BigInteger,
            nullable=False,
            server_default=sa.text("pg_current_xact_id()::text::bigint"),
        ),
        sa.Column("event_id", pg.UUID, nullable=False),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("alliance_id", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("envelope", pg.JSONB, nullable=False),
        sa.UniqueConstraint("event_id", name="events_event_id_key"),
        sa.UniqueConstraint("stream_id", "stream_version", name="events_stream_version"),
        schema=schema,
    )
    op.create_index("events_commit_order", "events", ["transaction_id", "position"], schema=schema)
    op.create_table(
        "relay_checkpoint",
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.text("true")),
        sa.Column("transaction_id", sa.BigInteger, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.CheckConstraint("singleton", name="relay_checkpoint_singleton_check"),
        schema=schema,
    )
    op.create_table(
        "projection_checkpoints",
        sa.Column("projection", sa.Text, primary_key=True),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        schema=schema,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("body", pg.JSONB),
        sa.Column("headers", pg.JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.PrimaryKeyConstraint("caller", "key"),
        schema=schema,
    )
    # Within a stream, global order must agree with version order. A transaction that got
    # its id before a newer one committed the previous version (it wrote something else
    # first, such as its idempotency key) would be read before it: refuse it, and the
    # command retries in a new transaction.
    op.execute(
        f"""CREATE OR REPLACE FUNCTION {schema}.keep_stream_in_commit_order() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.stream_version > 1 AND EXISTS (
                  SELECT 1 FROM {schema}.events
                  WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1
                    AND transaction_id > NEW.transaction_id) THEN
                RAISE EXCEPTION 'stream % moved on in a newer transaction', NEW.stream_id
                  USING ERRCODE = 'serialization_failure';
              END IF;
              RETURN NEW;
            END $$"""
    )
    op.execute(
        f"""CREATE OR REPLACE TRIGGER events_in_stream_order BEFORE INSERT ON {schema}.events
            FOR EACH ROW EXECUTE FUNCTION {schema}.keep_stream_in_commit_order()"""
    )
