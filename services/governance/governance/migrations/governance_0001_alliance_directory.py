"""Alliance directory

Governance's table as the start-up DDL made it before migrations (commit 5a1929d).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "governance_0001"
down_revision = None
branch_labels = ("governance",)
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "alliance_directory",
        sa.Column("alliance_id", pg.UUID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("partner_orgs", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        schema=schema,
    )
    op.create_index(
        "alliance_directory_partners",
        "alliance_directory",
        ["partner_orgs"],
        schema=schema,
        postgresql_using="gin",
    )
