"""A CRM credential's secret at rest: sealed in `crm_credentials`, never in a remembered
idempotent answer, in no table of the scorecard's schema at all; requests signed with it
still verify, through a key rotation too; and a schema from before sealing is sealed by its
migration."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text

from concord.clock import ManualClock
from concord.migrations import migrate
from concord.secrets import SecretsUnavailable
from scorecard.app import SERVICE, create_app
from scorecard.settings import ScorecardSettings
from tests.conftest import BEFORE_THE_PERIODS, SECRETS_KEYS, auth, process_env, serve
from tests.integration.scorecard.conftest import Board, Crm, crm_of

ALLIANCE = "6f2c1a7e-0000-4000-8000-000000000001"


def dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg", "postgresql")


async def tables_holding(database_url: str, needle: str) -> list[str]:
    """Every table of the scorecard's schema with a row whose text holds `needle`."""
    conn = await asyncpg.connect(dsn(database_url))
    try:
        tables = await conn.fetch(
            """SELECT table_name FROM information_schema.tables
               WHERE table_schema = 'scorecard' AND table_type = 'BASE TABLE'"""
        )
        assert {"crm_credentials", "idempotency_keys", "events"} <= {t[0] for t in tables}
        found = []
        for (table,) in sorted(tables):
            query = f'SELECT count(*) FROM scorecard."{table}" AS r WHERE strpos(r::text, $1) > 0'
            if await conn.fetchval(query, needle):
                found.append(table)
        return found
    finally:
        await conn.close()


async def sealed_secret(database_url: str, key_id: str) -> str:
    conn = await asyncpg.connect(dsn(database_url))
    try:
        query = "SELECT sealed_secret FROM scorecard.crm_credentials WHERE key_id = $1"
        sealed: str = await conn.fetchval(query, key_id)
        return sealed
    finally:
        await conn.close()


def pipeline_item(id: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "opportunity.created",
        "occurred_at": "2026-03-05T09:00:00Z",
        "opportunity_id": f"opp-{id}",
        "account": "Bank of Springfield",
        "amount": "1000.00",
        "currency": "EUR",
        "stage": "qualified",
        "close_date": "2026-06-30",
    }


async def assert_verifies(crm: Crm, id: str) -> None:
    sent = await crm.send(pipeline_item(id))
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 1


async def test_an_issued_secret_is_in_no_table_and_its_replay_says_it_was_shown_once(
    board: Board, database_url: str
) -> None:
    path = f"/alliances/{board.alliance_id}/integrations/crm/credentials"
    headers = {**auth(), "Idempotency-Key": "issue-crm-1"}
    issued = await board.client.post(path, headers=headers)
    assert issued.status_code == 201, issued.text
    credential = issued.json()
    secret = credential["secret"]

    assert await tables_holding(database_url, secret) == []
    await assert_verifies(Crm(board.client, credential["key_id"], secret), "crm-1")

    replayed = await board.client.post(path, headers=headers)
    assert replayed.status_code == 409, replayed.text
    assert replayed.headers["content-type"] == "application/problem+json"
    assert replayed.headers["idempotent-replayed"] == "true"
    problem = replayed.json()
    assert problem["type"] == "/problems/shown-once"
    assert secret not in replayed.text
    assert problem["answer"]["key_id"] == credential["key_id"]  # what to revoke, if lost
    listed = await board.client.get(path, headers=auth())
    assert [c["key_id"] for c in listed.json()] == [credential["key_id"]]  # made once
    assert await tables_holding(database_url, secret) == []


async def test_old_credentials_verify_through_a_key_rotation(
    board: Board, settings: Callable[..., Any], database_url: str, nats_url: str
) -> None:
    before = await crm_of(board)
    new_key = Fernet.generate_key().decode()
    rotated = settings(ScorecardSettings, secrets_keys=f"{new_key},{SECRETS_KEYS}")
    async with serve(create_app(rotated, clock=ManualClock(BEFORE_THE_PERIODS))) as client:
        await assert_verifies(Crm(client, before.key_id, before.secret), "crm-old")
        after = await crm_of(Board(client, board.alliance_id))
        await assert_verifies(after, "crm-new")
    sealed_after = await sealed_secret(database_url, after.key_id)
    assert Fernet(new_key).decrypt(sealed_after.encode()).decode() == after.secret
    with pytest.raises(InvalidToken):
        Fernet(SECRETS_KEYS).decrypt(sealed_after.encode())

    env = {
        **process_env(database_url, nats_url, "scorecard"),
        "CONCORD_SECRETS_KEYS": f"{new_key},{SECRETS_KEYS}",
    }
    resealed = subprocess.run(
        [sys.executable, "-m", "concord.cli", "reseal", "scorecard"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resealed.returncode == 0, resealed.stderr
    assert "2 secret(s) sealed again" in resealed.stdout
    # The old key can go now: the new one alone opens both.
    only_new = settings(ScorecardSettings, secrets_keys=new_key)
    async with serve(create_app(only_new, clock=ManualClock(BEFORE_THE_PERIODS))) as client:
        await assert_verifies(Crm(client, before.key_id, before.secret), "crm-old-2")
        await assert_verifies(Crm(client, after.key_id, after.secret), "crm-new-2")


async def test_a_scorecard_without_keys_refuses_to_start(settings: Callable[..., Any]) -> None:
    runtime = SERVICE.runtime(settings(ScorecardSettings, secrets_keys=None))
    try:
        with pytest.raises(SecretsUnavailable, match="CONCORD_SECRETS_KEYS"):
            await runtime.install()
    finally:
        await runtime.engine.dispose()


PLAIN = "plain-secret-from-before-sealing"
ISSUED_BODY = (
    f'{{"key_id": "crm_old", "secret": "{PLAIN}", "alliance_id": "{ALLIANCE}", '
    '"org_id": "acme", "created_at": "2026-01-05T09:00:00+00:00"}'
)


async def test_the_migration_seals_plain_secrets_and_forgets_the_shown_ones(
    settings: Callable[..., Any], database_url: str
) -> None:
    runtime = SERVICE.runtime(settings(ScorecardSettings))
    try:
        await migrate(
            runtime.engine, "scorecard", runtime.migrations, to=("kernel@head", "scorecard_0002")
        )
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text(
                    """INSERT INTO scorecard.crm_credentials
                           (key_id, alliance_id, org_id, secret, created_by)
                       VALUES ('crm_old', :a, 'acme', :s, 'alice')"""
                ),
                {"a": ALLIANCE, "s": PLAIN},
            )
            await conn.execute(
                text(
                    """INSERT INTO scorecard.idempotency_keys
                           (caller, key, request_hash, status_code, body, headers)
                       VALUES ('acme/alice', 'k1', 'h', 201, CAST(:body AS jsonb), '{}')"""
                ),
                {"body": ISSUED_BODY},
            )
        with pytest.raises(SecretsUnavailable):  # no keys: refused, and nothing changed
            await migrate(runtime.engine, "scorecard", runtime.migrations)
        still = await tables_holding(database_url, PLAIN)
        assert sorted(still) == ["crm_credentials", "idempotency_keys"]

        await runtime.install()

        assert await tables_holding(database_url, PLAIN) == []
        assert runtime.secrets.open(await sealed_secret(database_url, "crm_old")) == PLAIN
        async with runtime.engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT status_code, body FROM scorecard.idempotency_keys"))
            ).one()
        assert row.status_code == 409 and row.body["type"] == "/problems/shown-once"
        assert row.body["answer"]["key_id"] == "crm_old"
    finally:
        await runtime.engine.dispose()
