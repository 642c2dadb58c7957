"""Scorecard's tables as they are today, as SQLAlchemy Core `Table`s: the scorecard board's
read models (`projections.ScorecardBoard`, emptied by its rebuild) and the CRM tables
(`integrations`, never emptied: credentials, replayed signatures, accepted CRM events).
Migrations in `scorecard/migrations/` are how a live schema gets here; a test holds the two
to each other. Change a table here and add a revision in the same change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from concord.tables import add_kernel_tables

SCHEMA = "scorecard"


def _at(name: str, *, now: bool = False) -> Column[Any]:
    return Column(
        name, DateTime(timezone=True), nullable=False, server_default=text("now()") if now else None
    )


def _required(name: str, type_: Any) -> Column[Any]:
    return Column(name, type_, nullable=False)


def _private_position() -> Column[Any]:
    """A row's place among the rows of the same position (the shared scorecard's version
    when it was read): 0 for a shared row, the private scorecard's version for a private
    one, so a partner's own private rows fall in among the shared ones in the order they
    came, and the shared rows' places never depend on anyone's private ones."""
    return Column("private_position", Integer, nullable=False, server_default=text("0"))


def add_scorecard_tables(metadata: MetaData) -> None:
    Table(
        "scorecards",
        metadata,
        Column("alliance_id", UUID, primary_key=True),
        _required("currency", Text),
        _required("thresholds", JSONB),
        _at("opened_at"),
        _required("version", Integer),
    )
    Table(
        "kpis",
        metadata,
        _required("alliance_id", UUID),
        _required("kpi_id", UUID),
        _required("position", Integer),
        _required("name", Text),
        Column("description", Text),
        _required("dimension", Text),
        _required("kind", Text),
        _required("unit", Text),
        Column("currency", Text),
        _required("good_direction", Text),
        _required("owner_org", Text),
        _required("visibility", Text),
        _required("cadence", Text),
        _required("headline", Boolean),
        Column("feed", Text),
        _at("defined_at"),
        _private_position(),
        PrimaryKeyConstraint("alliance_id", "kpi_id"),
    )
    Table(
        "kpi_periods",
        metadata,
        _required("alliance_id", UUID),
        _required("kpi_id", UUID),
        _required("period", Text),
        _required("period_order", Integer),
        Column("target", Numeric),
        Column("actual", Numeric),
        Column("actual_source", Text),
        _at("updated_at"),
        PrimaryKeyConstraint("alliance_id", "kpi_id", "period"),
    )
    Table(
        "kpi_changes",
        metadata,
        _required("alliance_id", UUID),
        _required("stream_version", Integer),
        _required("kpi_id", UUID),
        _required("period", Text),
        _required("change", Text),
        Column("old_value", Numeric),
        Column("new_value", Numeric),
        Column("status", Text),
        Column("source", Text),
        Column("note", Text),
        Column("by_org", Text),
        Column("by_sub", Text),
        _at("at"),
        # The organisation whose private scorecard the change is on ('' for the shared one).
        Column("private_to", Text, nullable=False, server_default=text("''")),
        PrimaryKeyConstraint("alliance_id", "private_to", "stream_version"),
        Index("kpi_changes_by_kpi", "alliance_id", "kpi_id", "stream_version"),
    )
    # Each partner's own private scorecard: how far the board has read it (ADR 0009).
    Table(
        "private_scorecards",
        metadata,
        _required("alliance_id", UUID),
        _required("org_id", Text),
        _required("version", Integer),
        PrimaryKeyConstraint("alliance_id", "org_id"),
    )
    Table(
        "objectives",
        metadata,
        _required("alliance_id", UUID),
        _required("objective_id", UUID),
        _required("position", Integer),
        _required("name", Text),
        Column("description", Text),
        _required("dimension", Text),
        _required("kpi_ids", ARRAY(UUID)),
        PrimaryKeyConstraint("alliance_id", "objective_id"),
    )
    # The private KPIs of one partner that measure a shared objective, shown to it alone.
    Table(
        "objective_private_kpis",
        metadata,
        _required("alliance_id", UUID),
        _required("objective_id", UUID),
        _required("org_id", Text),
        _required("kpi_ids", ARRAY(UUID)),
        PrimaryKeyConstraint("alliance_id", "objective_id", "org_id"),
    )
    Table(
        "objective_links",
        metadata,
        _required("alliance_id", UUID),
        _required("cause_id", UUID),
        _required("effect_id", UUID),
        _required("position", Integer),
        PrimaryKeyConstraint("alliance_id", "cause_id", "effect_id"),
    )
    Table(
        "initiatives",
        metadata,
        _required("alliance_id", UUID),
        _required("initiative_id", UUID),
        _required("position", Integer),
        _required("name", Text),
        Column("description", Text),
        _required("dimension", Text),
        _required("owner_org", Text),
        _required("owner_name", Text),
        _required("leading_indicator", Text),
        _required("due_date", Date),
        _at("launched_at"),
        PrimaryKeyConstraint("alliance_id", "initiative_id"),
    )
    Table(
        "initiative_progress",
        metadata,
        _required("alliance_id", UUID),
        _required("stream_version", Integer),
        _required("initiative_id", UUID),
        _required("as_of", Date),
        _required("completion", Integer),
        _required("status", Text),
        Column("note", Text),
        _required("by_org", Text),
        _required("by_sub", Text),
        _at("at"),
        PrimaryKeyConstraint("alliance_id", "stream_version"),
    )
    Table(
        "benefits",
        metadata,
        _required("alliance_id", UUID),
        _required("entry_id", UUID),
        _required("position", Integer),
        _required("partner_org", Text),
        _required("kind", Text),
        _required("amount", Numeric),
        _required("currency", Text),
        _required("period", Text),
        _required("period_order", Integer),
        _required("evidence", Text),
        _required("visibility", Text),
        _required("by_org", Text),
        _required("by_sub", Text),
        _at("recorded_at"),
        _private_position(),
        PrimaryKeyConstraint("alliance_id", "entry_id"),
        Index("benefits_in_order", "alliance_id", "position", "private_position"),
    )
    # Each partner's shared benefits per period; private entries stay out (a share must not
    # reveal what another partner keeps to itself).
    Table(
        "benefit_balance",
        metadata,
        _required("alliance_id", UUID),
        _required("period", Text),
        _required("period_order", Integer),
        _required("partner_org", Text),
        _required("amount", Numeric),
        _required("entries", Integer),
        PrimaryKeyConstraint("alliance_id", "period", "partner_org"),
    )
    # --- CRM ingestion (integrations.py): the service's own, never emptied by a rebuild.
    Table(
        "crm_credentials",
        metadata,
        Column("key_id", Text, primary_key=True),
        _required("alliance_id", UUID),
        _required("org_id", Text),
        # Sealed with the service's keys (concord.secrets), never the secret itself.
        _required("sealed_secret", Text),
        _required("created_by", Text),
        _at("created_at", now=True),
        Column("revoked_at", DateTime(timezone=True)),
    )
    # Signatures seen within the tolerance: the same signed request twice is a replay.
    Table(
        "crm_deliveries",
        metadata,
        _required("key_id", Text),
        _required("signature", Text),
        _at("received_at", now=True),
        PrimaryKeyConstraint("key_id", "signature"),
        Index("crm_deliveries_by_age", "key_id", "received_at"),
    )
    # The CRM events accepted, by the CRM's own id: what makes a re-sent batch change nothing.
    Table(
        "crm_receipts",
        metadata,
        _required("alliance_id", UUID),
        _required("org_id", Text),
        _required("crm_event_id", Text),
        _required("content_hash", Text),
        _at("received_at", now=True),
        PrimaryKeyConstraint("alliance_id", "org_id", "crm_event_id"),
    )


def metadata(schema: str = SCHEMA) -> MetaData:
    """Everything in scorecard's schema: the kernel's tables and its own."""
    found = MetaData(schema=schema)
    add_kernel_tables(found)
    add_scorecard_tables(found)
    return found
