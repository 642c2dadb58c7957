"""Drop alliance_directory: the kernel's alliances table replaces it

`GET /alliances` reads the kernel's membership projection (`alliances`, made by
kernel_0002). No rows are copied: a new `alliances` has no checkpoint, so its runner replays
governance's stream from the start by itself, and `concord rebuild governance alliances`
refills it on demand. The old projection's checkpoint goes with its table. If exists: a
schema made by start-up DDL after alliance_directory was retired never had it.
"""

from __future__ import annotations

from alembic import op

revision = "governance_0002"
down_revision = "governance_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.drop_table("alliance_directory", schema=schema, if_exists=True)
    op.execute(
        f"DELETE FROM {schema}.projection_checkpoints WHERE projection = 'alliance_directory'"
    )
