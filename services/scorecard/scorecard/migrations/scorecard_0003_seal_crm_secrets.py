"""Seal CRM credential secrets, and forget the ones kept in idempotent answers

`crm_credentials.secret` (plain text) becomes `sealed_secret`, each secret sealed with the
first of the service's keys (`CONCORD_SECRETS_KEYS`), in this revision's transaction: no
plain secret survives it, and a failure leaves the schema as it was. The keys come from
the service's settings through the migration context (`concord.migrations.secret_box`); a
schema with credentials cannot be migrated without them.

The answers remembered for an issuing request's Idempotency-Key held the secret too. They
become what a replay answers from now on (the kernel's `shown_once_problem`): 409
`shown-once`, with the rest of the first answer under `answer`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from concord.commands import Answer
from concord.migrations import secret_box

revision = "scorecard_0003"
down_revision = "scorecard_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    credentials = f"{schema}.crm_credentials"
    op.add_column("crm_credentials", sa.Column("sealed_secret", sa.Text), schema=schema)
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT key_id, secret FROM {credentials}")).all()
    if rows:
        box = secret_box()
        conn.execute(
            sa.text(f"UPDATE {credentials} SET sealed_secret = :sealed WHERE key_id = :key_id"),
            [{"key_id": row.key_id, "sealed": box.seal(row.secret)} for row in rows],
        )
    op.alter_column("crm_credentials", "sealed_secret", nullable=False, schema=schema)
    op.drop_column("crm_credentials", "secret", schema=schema)
    _forget_shown_secrets(conn, f"{schema}.idempotency_keys")


def _forget_shown_secrets(conn: sa.Connection, keys: str) -> None:
    remembered = sa.text(
        f"SELECT caller, key, status_code, body FROM {keys} WHERE body ? 'secret'"
    ).columns(body=JSONB)
    rows = conn.execute(remembered).all()
    if not rows:
        return
    replay = sa.text(
        f"""UPDATE {keys} SET status_code = :status, body = :body, headers = :headers
            WHERE caller = :caller AND key = :key"""
    ).bindparams(sa.bindparam("body", type_=JSONB), sa.bindparam("headers", type_=JSONB))
    kept = [(row, Answer(row.status_code, row.body, shown_once=("secret",)).kept()) for row in rows]
    conn.execute(
        replay,
        [
            {
                "caller": row.caller,
                "key": row.key,
                "status": answer.status_code,
                "body": answer.body,
                "headers": answer.headers,
            }
            for row, answer in kept
        ],
    )
