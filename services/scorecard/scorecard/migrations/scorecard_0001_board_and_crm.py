"""Scorecard board, known alliances and the CRM tables

Scorecard's tables as the start-up DDL made them before migrations (commit 5a1929d).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "scorecard_0001"
down_revision = None
branch_labels = ("scorecard",)
depends_on = None


def _required(name: str, type_: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False)


def _at(name: str, *, now: bool = False) -> sa.Column[Any]:
    default = sa.text("now()") if now else None
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=default)


def upgrade(schema: str) -> None:
    uuid, text, integer, numeric = pg.UUID, sa.Text, sa.Integer, sa.Numeric
    op.create_table(
        "known_alliances",
        sa.Column("alliance_id", uuid, primary_key=True),
        _required("name", text),
        _required("purpose", text),
        _required("goals", pg.JSONB),
        _required("partners", pg.JSONB),
        _required("partner_orgs", pg.ARRAY(text)),
        sa.Column("executive_sponsors", pg.JSONB, nullable=False, server_default="[]"),
        sa.Column("agreement_version", integer, nullable=False, server_default=sa.text("0")),
        _required("version", integer),
        _at("updated_at"),
        schema=schema,
    )
    op.create_table(
        "scorecards",
        sa.Column("alliance_id", uuid, primary_key=True),
        _required("currency", text),
        _required("thresholds", pg.JSONB),
        _at("opened_at"),
        _required("version", integer),
        schema=schema,
    )
    op.create_table(
        "kpis",
        _required("alliance_id", uuid),
        _required("kpi_id", uuid),
        _required("position", integer),
        _required("name", text),
        sa.Column("description", text),
        _required("dimension", text),
        _required("kind", text),
        _required("unit", text),
        sa.Column("currency", text),
        _required("good_direction", text),
        _required("owner_org", text),
        _required("visibility", text),
        _required("cadence", text),
        _required("headline", sa.Boolean),
        sa.Column("feed", text),
        _at("defined_at"),
        sa.PrimaryKeyConstraint("alliance_id", "kpi_id"),
        schema=schema,
    )
    op.create_table(
        "kpi_periods",
        _required("alliance_id", uuid),
        _required("kpi_id", uuid),
        _required("period", text),
        _required("period_order", integer),
        sa.Column("target", numeric),
        sa.Column("actual", numeric),
        sa.Column("actual_source", text),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("alliance_id", "kpi_id", "period"),
        schema=schema,
    )
    op.create_table(
        "kpi_changes",
        _required("alliance_id", uuid),
        _required("stream_version", integer),
        _required("kpi_id", uuid),
        _required("period", text),
        _required("change", text),
        sa.Column("old_value", numeric),
        sa.Column("new_value", numeric),
        sa.Column("status", text),
        sa.Column("source", text),
        sa.Column("note", text),
        sa.Column("by_org", text),
        sa.Column("by_sub", text),
        _at("at"),
        sa.PrimaryKeyConstraint("alliance_id", "stream_version"),
        schema=schema,
    )
    op.create_index(
        "kpi_changes_by_kpi",
        "kpi_changes",
        ["alliance_id", "kpi_id", "stream_version"],
        schema=schema,
    )
    op.create_table(
        "objectives",
        _required("alliance_id", uuid),
        _required("objective_id", uuid),
        _required("position", integer),
        _required("name", text),
        sa.Column("description", text),
        _required("dimension", text),
        _required("kpi_ids", pg.ARRAY(uuid)),
        sa.PrimaryKeyConstraint("alliance_id", "objective_id"),
        schema=schema,
    )
    op.create_table(
        "objective_links",
        _required("alliance_id", uuid),
        _required("cause_id", uuid),
        _required("effect_id", uuid),
        _required("position", integer),
        sa.PrimaryKeyConstraint("alliance_id", "cause_id", "effect_id"),
        schema=schema,
    )
    op.create_table(
        "initiatives",
        _required("alliance_id", uuid),
        _required("initiative_id", uuid),
        _required("position", integer),
        _required("name", text),
        sa.Column("description", text),
        _required("dimension", text),
        _required("owner_org", text),
        _required("owner_name", text),
        _required("leading_indicator", text),
        _required("due_date", sa.Date),
        _at("launched_at"),
        sa.PrimaryKeyConstraint("alliance_id", "initiative_id"),
        schema=schema,
    )
    op.create_table(
        "initiative_progress",
        _required("alliance_id", uuid),
        _required("stream_version", integer),
        _required("initiative_id", uuid),
        _required("as_of", sa.Date),
        _required("completion", integer),
        _required("status", text),
        sa.Column("note", text),
        _required("by_org", text),
        _required("by_sub", text),
        _at("at"),
        sa.PrimaryKeyConstraint("alliance_id", "stream_version"),
        schema=schema,
    )
    op.create_table(
        "benefits",
        _required("alliance_id", uuid),
        _required("entry_id", uuid),
        _required("position", integer),
        _required("partner_org", text),
        _required("kind", text),
        _required("amount", numeric),
        _required("currency", text),
        _required("period", text),
        _required("period_order", integer),
        _required("evidence", text),
        _required("visibility", text),
        _required("by_org", text),
        _required("by_sub", text),
        _at("recorded_at"),
        sa.PrimaryKeyConstraint("alliance_id", "entry_id"),
        schema=schema,
    )
    op.create_index("benefits_in_order", "benefits", ["alliance_id", "position"], schema=schema)
    op.create_table(
        "benefit_balance",
        _required("alliance_id", uuid),
        _required("period", text),
        _required("period_order", integer),
        _required("partner_org", text),
        _required("amount", numeric),
        _required("entries", integer),
        sa.PrimaryKeyConstraint("alliance_id", "period", "partner_org"),
        schema=schema,
    )
    op.create_table(
        "crm_credentials",
        sa.Column("key_id", text, primary_key=True),
        _required("alliance_id", uuid),
        _required("org_id", text),
        _required("secret", text),
        _required("created_by", text),
        _at("created_at", now=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_table(
        "crm_deliveries",
        _required("key_id", text),
        _required("signature", text),
        _at("received_at", now=True),
        sa.PrimaryKeyConstraint("key_id", "signature"),
        schema=schema,
    )
    op.create_index(
        "crm_deliveries_by_age", "crm_deliveries", ["key_id", "received_at"], schema=schema
    )
    op.create_table(
        "crm_receipts",
        _required("alliance_id", uuid),
        _required("org_id", text),
        _required("crm_event_id", text),
        _required("content_hash", text),
        _at("received_at", now=True),
        sa.PrimaryKeyConstraint("alliance_id", "org_id", "crm_event_id"),
        schema=schema,
    )
