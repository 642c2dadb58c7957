"""Timers, reaction checkpoints and failures, and the alliances every service knows

Created only if missing: start-up DDL between 5a1929d and migrations already made them in
some schemas, and adoption stamps those at revision 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "kernel_0002"
down_revision = "kernel_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    def at(name: str, *, nullable: bool = False, now: bool = False) -> sa.Column[object]:
        default = sa.text("now()") if now else None
        return sa.Column(
            name, sa.DateTime(timezone=True), nullable=nullable, server_default=default
        )

    # A timer is keyed within its stream: scheduling the same key again moves it.
    op.create_table(
        "timers",
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("timer_id", pg.UUID, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("alliance_id", sa.Text),
        sa.Column("data", pg.JSONB, nullable=False),
        at("due_at"),
        sa.Column("correlation_id", sa.Text),
        sa.Column("scheduled_by", sa.Text),
        at("fired_at", nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        at("parked_at", nullable=True),
        sa.PrimaryKeyConstraint("stream_id", "key"),
        schema=schema,
        if_not_exists=True,
    )
    op.create_index(
        "timers_due",
        "timers",
        ["due_at"],
        schema=schema,
        postgresql_where=sa.text("fired_at IS NULL AND parked_at IS NULL"),
        if_not_exists=True,
    )
    op.create_table(
        "reaction_checkpoints",
        sa.Column("reaction", sa.Text, primary_key=True),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        at("updated_at", now=True),
        schema=schema,
        if_not_exists=True,
    )
    op.create_table(
        "reaction_failures",
        sa.Column("reaction", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("envelope", pg.JSONB, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        at("first_failed_at", now=True),
        at("last_failed_at", now=True),
        at("parked_at", nullable=True),
        sa.PrimaryKeyConstraint("reaction", "sequence"),
        schema=schema,
        if_not_exists=True,
    )
    # The membership read model (concord.membership.Alliances), refilled by its rebuild.
    op.create_table(
        "alliances",
        sa.Column("alliance_id", pg.UUID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("goals", pg.JSONB, nullable=False),
        sa.Column("partners", pg.JSONB, nullable=False),
        sa.Column("partner_orgs", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("executive_sponsors", pg.JSONB, nullable=False, server_default="[]"),
        sa.Column("agreement_version", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.Integer, nullable=False),
        at("created_at"),
        at("updated_at"),
        schema=schema,
        if_not_exists=True,
    )
    op.create_index(
        "alliances_partners",
        "alliances",
        ["partner_orgs"],
        schema=schema,
        postgresql_using="gin",
        if_not_exists=True,
    )
