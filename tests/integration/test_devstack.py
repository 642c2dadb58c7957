"""The embedded PostgreSQL asks every connection for the password it keeps beside its data
(`postgres-password`), a fresh cluster and one made with `trust` before passwords alike."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncpg
import pytest

from concord.devstack import EmbeddedPostgres, free_port
from tests.conftest import Stack


async def _refused(dsn: str) -> None:
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):  # a wrong password too
        conn = await asyncpg.connect(dsn)
        await conn.close()


async def _answers(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == "postgres"
    finally:
        await conn.close()


async def assert_needs_its_password(postgres: EmbeddedPostgres) -> None:
    at = f"127.0.0.1:{postgres.port}/postgres"
    await _refused(f"postgresql://postgres@{at}")
    await _refused(f"postgresql://postgres:wrong-password@{at}")
    await _answers(postgres.url(driver="postgresql"))


async def test_the_embedded_postgres_refuses_a_connection_without_its_password(
    stack: Stack,
) -> None:
    await assert_needs_its_password(stack.postgres)
    kept = stack.postgres.password_file
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stack.postgres.password in stack.postgres.url()
    assert stack.postgres.password not in stack.postgres.url(secret=False)


async def test_a_data_directory_made_with_trust_is_protected_on_its_next_start(
    tmp_path: Path,
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "postgres", free_port())
    if postgres.user:
        postgres._prepare_root()
    postgres.initdb()  # what a checkout from before passwords holds: trust for everyone
    assert "trust" in (postgres.data_dir / "pg_hba.conf").read_text()
    postgres.start()
    try:
        await assert_needs_its_password(postgres)
    finally:
        postgres.stop()
    postgres.start()  # and again: the kept password still opens it
    try:
        await assert_needs_its_password(postgres)
    finally:
        postgres.stop()
