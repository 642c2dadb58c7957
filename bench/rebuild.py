"""3. Rebuild throughput of scorecard's `alliances` (every service's membership projection).

Setup (not timed): N `AllianceCreated` events appended to governance's event store with
`EventStore.append` and published to governance's JetStream stream by the outbox `Relay`.

Kernel: `ProjectionRunner.rebuild(progress=False)` (truncate + replay the stream, each batch of
1000 committed with its checkpoint), timed around the whole call.
Baseline: the same N rows, already in memory, inserted by asyncpg `executemany` into a table
of the same shape, in one transaction after a TRUNCATE.
Ladder: steps between the two, to show where the kernel's time goes.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT

from bench.figures import Figure, ratio_at_least
from bench.stack import JWT_SECRET, SECRETS_KEYS, Stack
from concord.bus import stream_name
from concord.domain import Actor
from concord.events import CloudEvent, EventRegistry
from concord.projections import ReadModel
from concord.runtime import ServiceRuntime

DATABASE = "bench_rebuild"
TARGET = 0.3
APPEND_BATCH = 500

RAW_DDL = [
    "CREATE SCHEMA IF NOT EXISTS bench_raw",
    """CREATE TABLE IF NOT EXISTS bench_raw.alliances (
        alliance_id uuid PRIMARY KEY,
        name text NOT NULL,
        purpose text NOT NULL,
        goals jsonb NOT NULL,
        partners jsonb NOT NULL,
        partner_orgs text[] NOT NULL,
        executive_sponsors jsonb NOT NULL DEFAULT '[]',
        agreement_version integer NOT NULL DEFAULT 0,
        version integer NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    )""",
]
RAW_INSERT = """INSERT INTO bench_raw.alliances
    (alliance_id, name, purpose, goals, partners, partner_orgs, version, created_at, updated_at)
    VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9)
    ON CONFLICT (alliance_id) DO NOTHING"""


def _settings(cls: type[Any], stack: Stack) -> Any:
    return cls(
        database_url=stack.url(DATABASE),
        nats_url=stack.nats.url,
        jwt_secret=JWT_SECRET,
        secrets_keys=SECRETS_KEYS,
        log_level="ERROR",
    )


async def _fill(stack: Stack, count: int) -> tuple[list[CloudEvent], dict[str, float]]:
    """Put `count` alliance_created events into governance's store and JetStream stream."""
    from governance.domain.alliance import EVENTS, AllianceCreated, PartnerOrganisation, stream_id
    from governance.settings import GovernanceSettings

    registry = EventRegistry("governance")
    registry.register(*EVENTS)
    runtime = ServiceRuntime(_settings(GovernanceSettings, stack), registry=registry)
    await runtime.install()
    by = Actor(sub="bench", org="acme")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    envelopes = []
    for i in range(count):
        alliance_id = uuid.uuid4()
        event = AllianceCreated(
            alliance_id=alliance_id,
            name=f"Alliance {i}",
            purpose="Win mid-market banking deals together",
            goals=["Grow joint revenue to 10M", "Launch a co-sold offering"],
            partners=[
                PartnerOrganisation(org_id="acme", name="Acme"),
                PartnerOrganisation(org_id=f"partner{i % 97}", name=f"Partner {i % 97}"),
            ],
        )
        envelopes.append(
            registry.envelope(
                event,
                stream_id=stream_id(alliance_id),
                stream_version=1,
                alliance_id=str(alliance_id),
                actor=by,
                at=start + timedelta(seconds=i),
            )
        )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for offset in range(0, count, APPEND_BATCH):
        async with runtime.engine.begin() as conn:
            for envelope in envelopes[offset : offset + APPEND_BATCH]:
                await runtime.store.append(conn, envelope.subject, 0, [envelope])
    timings["append_seconds"] = time.perf_counter() - started

    await runtime.bus.connect()
    try:
        await runtime.bus.ensure_stream("governance")
        started = time.perf_counter()
        published = 0
        async with runtime.engine.connect() as conn:
            checkpoint = await runtime.relay.checkpoint(conn)
            while True:
                checkpoint, sent = await runtime.relay.pass_once(conn, checkpoint)
                published += sent
                if sent == 0:
                    break
        timings["relay_seconds"] = time.perf_counter() - started
        info = await runtime.bus.js.stream_info(stream_name("governance"))
        if published != count or info.state.messages != count:
            raise RuntimeError(
                f"expected {count} events in the stream; relay sent {published}, "
                f"stream holds {info.state.messages}"
            )
    finally:
        await runtime.bus.close()
        await runtime.engine.dispose()
    return envelopes, timings


def _row(event: CloudEvent) -> tuple[Any, ...]:
    data = event.data
    return (
        uuid.UUID(str(event.allianceid)),
        data["name"],
        data["purpose"],
        json.dumps(data["goals"]),
        json.dumps(data["partners"]),
        [p["org_id"] for p in data["partners"]],
        event.streamversion,
        event.time,  # created_at
        event.time,  # updated_at
    )


async def _raw(dsn: str, rows: list[tuple[Any, ...]], mode: str) -> float:
    """Rows per second into bench_raw.alliances, one transaction after a TRUNCATE."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute("TRUNCATE bench_raw.alliances")
            if mode == "executemany":
                await conn.executemany(RAW_INSERT, rows)
            elif mode == "copy":
                columns = ["alliance_id", "name", "purpose", "goals", "partners", "partner_orgs"]
                columns += ["version", "created_at", "updated_at"]
                await conn.copy_records_to_table(
                    "alliances", schema_name="bench_raw", records=rows, columns=columns
                )
            else:
                for row in rows:
                    await conn.execute(RAW_INSERT, *row)
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def _replay_only(stack: Stack, count: int) -> float:
    """Events per second read from the stream and decoded, as rebuild reads them, no DB."""
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        replay = await js.pull_subscribe(
            "",
            stream=stream_name("governance"),
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                filter_subjects=["concord.governance.alliance.>"],
                inactive_threshold=60,
            ),
        )
        started = time.perf_counter()
        seen = 0
        while seen < count:
            msgs = await replay.fetch(1000, timeout=1)
            for msg in msgs:
                CloudEvent.from_json(msg.data)
            seen += len(msgs)
            if msgs[-1].metadata.num_pending == 0:
                break
        rate = seen / (time.perf_counter() - started)
        await replay.unsubscribe()
        return rate
    finally:
        await nc.close()


async def run(
    stack: Stack, *, events: int = 20_000, rounds: int = 2, ladder: bool = True
) -> tuple[list[Figure], dict[str, float]]:
    from scorecard.settings import ScorecardSettings

    await stack.create_database(DATABASE)
    await stack.empty_jetstream()
    dsn = stack.dsn(DATABASE)
    admin = await asyncpg.connect(dsn)
    try:
        for statement in RAW_DDL:
            await admin.execute(statement)
    finally:
        await admin.close()

    envelopes, fill = await _fill(stack, events)
    rows = [_row(e) for e in envelopes]

    # Every runtime has the membership projection; no other projection runs here.
    runtime = ServiceRuntime(_settings(ScorecardSettings, stack))
    projection = runtime.alliances
    await runtime.install()
    await runtime.bus.connect()
    runner = runtime.runners[projection.name]
    kernel_rates, raw_rates, reports = [], [], []
    steps: dict[str, float] = {}
    try:
        for _ in range(rounds):
            raw_rates.append(await _raw(dsn, rows, "executemany"))
            started = time.perf_counter()
            report = await runner.rebuild(progress=False)
            elapsed = time.perf_counter() - started
            if report.events != events:
                raise RuntimeError(f"rebuild applied {report.events} events, not {events}")
            kernel_rates.append(report.events / elapsed)
            reports.append(round(report.events_per_second, 1))
        async with runtime.engine.connect() as conn:
            count = await conn.scalar(text("SELECT count(*) FROM scorecard.alliances"))
        if count != events:
            raise RuntimeError(f"alliances holds {count} rows after rebuild, not {events}")
        if ladder:
            steps["raw executemany, one transaction"] = max(raw_rates)
            steps["raw COPY, one transaction"] = await _raw(dsn, rows, "copy")
            steps["raw one INSERT per row, one transaction"] = await _raw(dsn, rows, "per-row")
            steps["NATS replay + CloudEvent.from_json, no DB"] = await _replay_only(stack, events)
            steps["Alliances.apply through a ReadModel, no NATS"] = await _apply_only(
                runtime, projection, envelopes
            )
            steps["same INSERT batched: one SQLAlchemy executemany, no NATS"] = await _batched(
                runtime, envelopes
            )
            steps["kernel ProjectionRunner.rebuild"] = max(kernel_rates)
    finally:
        await runtime.bus.close()
        await runtime.engine.dispose()

    figure = Figure(
        key="rebuild",
        label=f"3 rebuild alliances, {events:,} ev",
        unit="events/s",
        value=max(kernel_rates),
        baseline=max(raw_rates),
        baseline_label="raw asyncpg executemany",
        target=f">= {TARGET:.0%} of raw",
        check=ratio_at_least(TARGET),
        details={
            "events": events,
            "kernel_rounds": [round(r, 1) for r in kernel_rates],
            "kernel_rounds_as_reported_by_rebuild": reports,
            "raw_rounds": [round(r, 1) for r in raw_rates],
            "setup_append_seconds": round(fill["append_seconds"], 2),
            "setup_relay_publish_seconds": round(fill["relay_seconds"], 2),
        },
    )
    return [figure], steps


async def _apply_only(runtime: ServiceRuntime, projection: Any, events: list[CloudEvent]) -> float:
    """The projection's own apply through the kernel's ReadModel (writes sent as executemany
    runs), into an emptied table in one transaction (rolled back afterwards), events already
    decoded, no NATS."""
    recorded = [projection.events.recorded(e) for e in events]
    async with runtime.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(text("TRUNCATE scorecard.alliances"))
            started = time.perf_counter()
            model = ReadModel(conn)
            for event in recorded:
                await projection.apply(model, event)
            await model.flush()
            rate = len(events) / (time.perf_counter() - started)
        finally:
            await transaction.rollback()
    return rate


# The statement Alliances uses for alliance_created, written out here: what an apply
# that takes a batch of events could send as one executemany.
BATCHED_CREATE = text(
    """INSERT INTO scorecard.alliances
       (alliance_id, name, purpose, goals, partners, partner_orgs, version, created_at,
        updated_at)
       VALUES (:id, :name, :purpose, :goals, :partners, :orgs, :version, :at, :at)
       ON CONFLICT (alliance_id) DO NOTHING"""
).bindparams(
    bindparam("goals", type_=JSONB),
    bindparam("partners", type_=JSONB),
    bindparam("orgs", type_=ARRAY(TEXT)),
)


async def _batched(runtime: ServiceRuntime, events: list[CloudEvent]) -> float:
    """Decoded events -> one executemany through SQLAlchemy, one transaction (rolled back)."""
    async with runtime.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(text("TRUNCATE scorecard.alliances"))
            started = time.perf_counter()
            params = [
                {
                    "id": e.allianceid,
                    "version": e.streamversion,
                    "at": e.time,
                    "name": e.data["name"],
                    "purpose": e.data["purpose"],
                    "goals": e.data["goals"],
                    "partners": e.data["partners"],
                    "orgs": [p["org_id"] for p in e.data["partners"]],
                }
                for e in events
            ]
            await conn.execute(BATCHED_CREATE, params)
            rate = len(events) / (time.perf_counter() - started)
        finally:
            await transaction.rollback()
    return rate
