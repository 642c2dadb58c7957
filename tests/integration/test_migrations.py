"""Schema migrations against a real PostgreSQL: a live schema is upgraded with its data, the
history builds exactly the `Table`s the code declares, replicas starting together both come
up, and a schema made by the start-up DDL before migrations is adopted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from concord.db import create_engine
from concord.migrations import migrate
from concord.runtime import ServiceRuntime
from concord.tables import kernel_metadata
from tests.conftest import Stack, fresh_database
from tests.integration import before_migrations

FIRST = ("kernel_0001", "scorecard_0001")
HEADS = ("kernel_0003", "scorecard_0004")
# What an upgrade from FIRST applies, in order, to reach HEADS.
UPGRADES = ("kernel_0002", "kernel_0003", "scorecard_0002", "scorecard_0003", "scorecard_0004")
ALLIANCE = "6f2c1a7e-0000-4000-8000-000000000001"
# What the revisions after the start-up DDL's day made in governance's schema.
AFTER_START_UP_DDL = (
    "DROP TABLE governance.projection_streams, governance.projection_parked",
    """ALTER TABLE governance.projection_checkpoints DROP COLUMN stopped_sequence,
       DROP COLUMN stopped_error, DROP COLUMN stopped_since""",
)


def service_runtime(settings: Callable[..., Any], service: str) -> ServiceRuntime:
    """The runtime the service's app wires, with its migrations."""
    from governance.app import create_app as governance
    from governance.settings import GovernanceSettings
    from scorecard.app import create_app as scorecard
    from scorecard.settings import ScorecardSettings

    apps: dict[str, tuple[Callable[[Any], Any], type[Any]]] = {
        "scorecard": (scorecard, ScorecardSettings),
        "governance": (governance, GovernanceSettings),
    }
    create_app, settings_class = apps[service]
    runtime: ServiceRuntime = create_app(settings(settings_class)).state.runtime
    return runtime


@pytest.fixture
async def scorecard_runtime(settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    runtime = service_runtime(settings, "scorecard")
    yield runtime
    await runtime.engine.dispose()


def differences(conn: Connection, metadata: MetaData) -> list[Any]:
    """What autogenerate would change to make the schema match `metadata` (nothing, we hope)."""
    schema = metadata.schema
    ctx = MigrationContext.configure(
        conn,
        opts={
            "include_schemas": True,
            "include_name": lambda name, kind, _: kind != "schema" or name in (None, schema),
            "version_table_schema": schema,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(ctx, metadata))


async def exists(conn: AsyncConnection, table: str) -> bool:
    return (await conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar()


EVENT = text(
    """INSERT INTO scorecard.events (event_id, stream_id, stream_version, event_type,
           alliance_id, occurred_at, envelope)
       VALUES (gen_random_uuid(), 'scorecard-1', :v, 'concord.scorecard.x.v1', '1', now(), '{}')"""
)


async def test_a_schema_at_revision_1_is_upgraded_to_head_with_its_data(
    scorecard_runtime: ServiceRuntime,
) -> None:
    runtime = scorecard_runtime
    first = await migrate(runtime.engine, "scorecard", runtime.migrations, to=FIRST)
    assert [s.revision for s in first.applied] == list(FIRST)
    rows = [
        """INSERT INTO scorecard.projection_checkpoints (projection, last_sequence)
           VALUES ('scorecard_board', 42), ('known_alliances', 7)""",
        """INSERT INTO scorecard.idempotency_keys (caller, key, request_hash, status_code)
           VALUES ('acme/alice', 'k1', 'h', 201)""",
        "INSERT INTO scorecard.scorecards VALUES (:a, 'EUR', '{}', now(), 3)",
        """INSERT INTO scorecard.known_alliances (alliance_id, name, purpose, goals, partners,
               partner_orgs, version, updated_at)
           VALUES (:a, 'Acme x Globex', 'p', '[]', '[]', '{acme,globex}', 1, now())""",
        """INSERT INTO scorecard.crm_credentials (key_id, alliance_id, org_id, secret, created_by)
           VALUES ('ck_1', :a, 'acme', 's', 'alice')""",
    ]
    async with runtime.engine.begin() as conn:
        for version in (1, 2, 3):
            await conn.execute(EVENT, {"v": version})
        for row in rows:
            await conn.execute(text(row), {"a": ALLIANCE})

    head = await runtime.install()

    assert [s.revision for s in head.applied] == list(UPGRADES)
    assert head.heads == HEADS and head.adopted == ()
    async with runtime.engine.begin() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM scorecard.events"))).scalar() == 3
        await conn.execute(EVENT, {"v": 4})  # still appends, the trigger still guards order
        found = await conn.execute(
            text("SELECT projection, last_sequence FROM scorecard.projection_checkpoints")
        )
        checkpoints = {row.projection: row.last_sequence for row in found}
        assert checkpoints == {"scorecard_board": 42}  # the dropped projection's went with it
        for table in ("idempotency_keys", "scorecards", "crm_credentials"):
            found = await conn.execute(text(f"SELECT count(*) FROM scorecard.{table}"))
            assert found.scalar() == 1, table
        assert not await exists(conn, "scorecard.known_alliances")
        new_rows = [
            """INSERT INTO scorecard.timers (stream_id, key, timer_id, name, data, due_at)
               VALUES ('scorecard-1', 'review', gen_random_uuid(), 'review', '{}', now())""",
            "INSERT INTO scorecard.reaction_checkpoints VALUES ('r', 1, now())",
            """INSERT INTO scorecard.reaction_failures (reaction, sequence, event_type, envelope,
                   attempts, error) VALUES ('r', 2, 't', '{}', 1, 'boom')""",
            """INSERT INTO scorecard.alliances (alliance_id, name, purpose, goals, partners,
                   partner_orgs, version, created_at, updated_at)
               VALUES (:a, 'A', 'p', '[]', '[]', '{acme}', 1, now(), now())""",
        ]
        for row in new_rows:
            await conn.execute(text(row), {"a": ALLIANCE})

    again = await runtime.install()
    assert again.applied == () and again.heads == HEADS


@pytest.mark.parametrize("service", ["scorecard", "governance"])
async def test_the_migrations_build_the_tables_the_code_declares(
    settings: Callable[..., Any], service: str
) -> None:
    from scorecard.tables import metadata as scorecard_metadata

    runtime = service_runtime(settings, service)
    try:
        await runtime.install()
        declared = scorecard_metadata() if service == "scorecard" else kernel_metadata(service)
        async with runtime.engine.connect() as conn:
            assert await conn.run_sync(differences, declared) == []
    finally:
        await runtime.engine.dispose()


async def test_replicas_installing_a_fresh_schema_together_both_start(
    settings: Callable[..., Any],
) -> None:
    runtimes = [service_runtime(settings, "scorecard") for _ in range(2)]
    try:
        results = await asyncio.gather(*(r.install() for r in runtimes))
    finally:
        for runtime in runtimes:
            await runtime.engine.dispose()
    assert sorted(len(r.applied) for r in results) == [0, 7]  # one migrated, one found it done
    assert all(r.heads == HEADS for r in results)


async def catalog(engine: AsyncEngine, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a schema defines, as PostgreSQL describes it."""
    queries = {
        "columns": """SELECT table_name, column_name, data_type, udt_name, is_nullable,
                          column_default FROM information_schema.columns
                      WHERE table_schema = :s ORDER BY 1, 2""",
        "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                          FROM pg_constraint WHERE connamespace = CAST(:s AS regnamespace)
                          ORDER BY 1, 2""",
        "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes
                      WHERE schemaname = :s ORDER BY 1, 2""",
        "triggers": """SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid)
                       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                       WHERE c.relnamespace = CAST(:s AS regnamespace) AND NOT tgisinternal
                       ORDER BY 1, 2""",
        "functions": """SELECT proname, regexp_replace(prosrc, '\\s+', ' ', 'g') FROM pg_proc
                        WHERE pronamespace = CAST(:s AS regnamespace) ORDER BY 1""",
    }
    async with engine.connect() as conn:
        return {
            kind: [tuple(row) for row in await conn.execute(text(query), {"s": schema})]
            for kind, query in queries.items()
        }


async def test_a_schema_made_by_the_old_start_up_ddl_is_adopted_and_upgraded(
    scorecard_runtime: ServiceRuntime, stack: Stack
) -> None:
    runtime = scorecard_runtime
    async with runtime.engine.begin() as conn:
        for statement in [*before_migrations.kernel_ddl("scorecard"), *before_migrations.SCORECARD]:
            await conn.execute(text(statement))
        await conn.execute(EVENT, {"v": 1})

    adopted = await runtime.install()

    assert adopted.adopted == FIRST
    assert [s.revision for s in adopted.applied] == list(UPGRADES)
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM scorecard.events"))).scalar() == 1
        assert not await exists(conn, "scorecard.known_alliances")
    # Exactly what a fresh schema migrated to head holds, down to the trigger.
    async with fresh_database(stack) as url:
        fresh = create_engine(url, pool_size=1)
        try:
            await migrate(fresh, "scorecard", runtime.migrations)
            assert await catalog(runtime.engine, "scorecard") == await catalog(fresh, "scorecard")
        finally:
            await fresh.dispose()


async def test_a_schema_made_by_the_latest_start_up_ddl_is_adopted_too(
    settings: Callable[..., Any],
) -> None:
    """Start-up DDL after 5a1929d also made revision 2's kernel tables (and no longer the
    retired read models): the revisions 2 take that in their stride."""
    runtime = service_runtime(settings, "governance")
    try:
        await runtime.install()
        async with runtime.engine.begin() as conn:
            await conn.execute(text("DROP TABLE governance.alembic_version"))
            for statement in AFTER_START_UP_DDL:  # kernel_0003 came after it
                await conn.execute(text(statement))
        adopted = await runtime.install()
        assert adopted.adopted == ("kernel_0001", "governance_0001")
        assert adopted.heads == ("kernel_0003", "governance_0002")
        async with runtime.engine.connect() as conn:
            assert await conn.run_sync(differences, kernel_metadata("governance")) == []
    finally:
        await runtime.engine.dispose()


async def test_a_governance_schema_from_before_migrations_loses_its_directory(
    settings: Callable[..., Any],
) -> None:
    runtime = service_runtime(settings, "governance")
    try:
        async with runtime.engine.begin() as conn:
            for statement in [
                *before_migrations.kernel_ddl("governance"),
                *before_migrations.GOVERNANCE,
            ]:
                await conn.execute(text(statement))
        adopted = await runtime.install()
        assert adopted.adopted == ("kernel_0001", "governance_0001")
        async with runtime.engine.connect() as conn:
            assert not await exists(conn, "governance.alliance_directory")
            assert await conn.run_sync(differences, kernel_metadata("governance")) == []
    finally:
        await runtime.engine.dispose()


def test_concord_migrate_brings_every_schema_to_head_and_says_what_it_applied(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from concord import cli
    from tests.conftest import JWT_SECRET, SECRETS_KEYS

    monkeypatch.setenv("CONCORD_DATABASE_URL", database_url)
    monkeypatch.setenv("CONCORD_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("CONCORD_SECRETS_KEYS", SECRETS_KEYS)
    assert cli.main(["migrate"]) == 0
    said = capsys.readouterr().out
    assert "scorecard: applied scorecard_0004" in said
    assert "trust-survey: at kernel_0003\n" in said
    assert cli.main(["migrate", "governance"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("{")]
    assert said == ["governance: at kernel_0003, governance_0002"]
