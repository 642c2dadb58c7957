"""Private scorecards on the board: each partner's private version, the private KPIs that
measure an objective, and places for private rows among the shared ones (ADR 0009)

Existing rows all came from the shared stream: they keep their positions, with private
position 0 and no private_to. A private KPI recorded on the shared stream before private
scorecards existed stays a shared-stream row, as its events do.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "scorecard_0004"
down_revision = "scorecard_0003"
branch_labels = None
depends_on = None


def _required(name: str, type_: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False)


def upgrade(schema: str) -> None:
    op.create_table(
        "private_scorecards",
        _required("alliance_id", pg.UUID),
        _required("org_id", sa.Text),
        _required("version", sa.Integer),
        sa.PrimaryKeyConstraint("alliance_id", "org_id"),
        schema=schema,
    )
    op.create_table(
        "objective_private_kpis",
        _required("alliance_id", pg.UUID),
        _required("objective_id", pg.UUID),
        _required("org_id", sa.Text),
        _required("kpi_ids", pg.ARRAY(pg.UUID)),
        sa.PrimaryKeyConstraint("alliance_id", "objective_id", "org_id"),
        schema=schema,
    )
    for table in ("kpis", "benefits"):
        op.add_column(
            table,
            sa.Column("private_position", sa.Integer, nullable=False, server_default=sa.text("0")),
            schema=schema,
        )
    op.drop_index("benefits_in_order", table_name="benefits", schema=schema)
    op.create_index(
        "benefits_in_order",
        "benefits",
        ["alliance_id", "position", "private_position"],
        schema=schema,
    )
    op.add_column(
        "kpi_changes",
        sa.Column("private_to", sa.Text, nullable=False, server_default=sa.text("''")),
        schema=schema,
    )
    op.drop_constraint("kpi_changes_pkey", "kpi_changes", schema=schema)
    op.create_primary_key(
        "kpi_changes_pkey",
        "kpi_changes",
        ["alliance_id", "private_to", "stream_version"],
        schema=schema,
    )
