"""Drop known_alliances: the kernel's alliances table replaces it

Scorecard learns who an alliance's partners are from the kernel's membership projection
(`alliances`, made by kernel_0002), like every service. No rows are copied: a new
`alliances` has no checkpoint, so its runner replays governance's stream from the start by
itself, and `concord rebuild scorecard alliances` refills it on demand. The old projection's
checkpoint goes with its table. If exists: a schema made by start-up DDL after
known_alliances was retired never had it.
"""

from __future__ import annotations

from alembic import op

revision = "scorecard_0002"
down_revision = "scorecard_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.drop_table("known_alliances", schema=schema, if_exists=True)
    op.execute(f"DELETE FROM {schema}.projection_checkpoints WHERE projection = 'known_alliances'")
