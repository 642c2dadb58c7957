"""Governance's branch of its schema's history (the kernel's branch is `concord.migrations`,
which says how the two fit together). Each module here is one Alembic revision."""
