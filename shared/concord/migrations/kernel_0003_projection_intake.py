"""Projection intake: versions per stream, parked messages, where an apply stopped

A projection applies each stream's events in version order (`projection_streams`), parks what
it cannot take (`projection_parked`: unreadable, invalid, foreign, or ahead of its stream) and
records where a failing `apply` stopped it (`projection_checkpoints.stopped_*`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "kernel_0003"
down_revision = "kernel_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    def at(name: str, *, nullable: bool = False, now: bool = False) -> sa.Column[object]:
        default = sa.text("now()") if now else None
        return sa.Column(
            name, sa.DateTime(timezone=True), nullable=nullable, server_default=default
        )

    op.create_table(
        "projection_streams",
        sa.Column("projection", sa.Text, nullable=False),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("projection", "stream_id"),
        schema=schema,
    )
    op.create_table(
        "projection_parked",
        sa.Column("projection", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("message", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("event_type", sa.Text),
        sa.Column("stream_id", sa.Text),
        sa.Column("stream_version", sa.Integer),
        at("parked_at", now=True),
        at("dropped_at", nullable=True),
        sa.PrimaryKeyConstraint("projection", "sequence"),
        schema=schema,
    )
    op.create_index(
        "projection_parked_by_stream",
        "projection_parked",
        ["projection", "stream_id", "stream_version"],
        schema=schema,
        postgresql_where=sa.text("dropped_at IS NULL"),
    )
    op.add_column(
        "projection_checkpoints", sa.Column("stopped_sequence", sa.BigInteger), schema=schema
    )
    op.add_column("projection_checkpoints", sa.Column("stopped_error", sa.Text), schema=schema)
    op.add_column("projection_checkpoints", at("stopped_since", nullable=True), schema=schema)
