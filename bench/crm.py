"""5. CRM ingestion throughput: signed batches of pipeline events into an alliance's scorecard.

Setup (not timed): governance and scorecard as uvicorn subprocesses (1 worker each) on one
database; alliances created in governance, their scorecards opened, three CRM-fed KPIs
defined (pipeline value, proposals submitted, closed-won revenue) with monthly targets for
24 months, and an integration credential issued to acme, all through the HTTP API as the
integration tests do. A warm-up alliance takes two small batches first.

Kernel: one CRM sends `batches` x `items` pipeline events (60% opportunity.created, 30%
proposal.submitted, 5% stage changes with a new amount, 5% closed-won, over 24 months), one
batch after another, each `POST /integrations/crm/events` signed as a CRM signs it.
"accepted" is items over the time from the first POST to the last answer; "projected" is
items over the time from the first POST until the one-page view answers at the last
answer's `version` (GET with `min_version`, as a reader that waits for its write would).
Then `senders` CRMs of as many alliances do the same concurrently, `sender_batches` each.

Baseline: the same items as (id, json) rows into a plain table with a primary key, by
asyncpg `executemany` in one transaction per batch, on the same database (one connection
per sender, as many senders). Best of two rounds; the kernel runs once.
Ladder: COPY, and the pure-Python domain work on the same batches (validate, decide, fold;
then build the CloudEvents the append writes), to show where the kernel's time goes.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from bench.figures import Figure, percentile
from bench.scorecard_client import PARTNER_A, Crm, ScorecardClient, dumps, scorecard_stack
from bench.stack import Stack

DATABASE = "bench_crm"
MONTHS = tuple(f"{year}-{month:02d}" for year in (2025, 2026) for month in range(1, 13))
VIEW_PERIOD = MONTHS[-1]
FED_KPIS = (
    {
        "name": "Joint pipeline created",
        "dimension": "commercial",
        "kind": "leading",
        "unit": "EUR",
        "currency": "EUR",
        "feed": "pipeline_value",
        "target": "2000000",
    },
    {
        "name": "Joint proposals submitted",
        "dimension": "commercial",
        "kind": "leading",
        "unit": "proposals",
        "feed": "proposals_submitted",
        "target": "40",
    },
    {
        "name": "Closed-won joint revenue",
        "dimension": "commercial",
        "kind": "lagging",
        "unit": "EUR",
        "currency": "EUR",
        "feed": "closed_won_revenue",
        "headline": True,
    },
)

RAW_DDL = [
    "CREATE SCHEMA IF NOT EXISTS bench_raw",
    "CREATE TABLE IF NOT EXISTS bench_raw.crm_items (id text PRIMARY KEY, item jsonb NOT NULL)",
]
RAW_INSERT = "INSERT INTO bench_raw.crm_items (id, item) VALUES ($1, $2::jsonb)"


def batch_items(tag: str, batch: int, size: int) -> list[dict[str, Any]]:
    """One CRM batch: mostly new opportunities and proposals, spread over 24 months; a few
    stage changes (new amount) and wins of opportunities created in earlier batches."""
    items: list[dict[str, Any]] = []
    for k in range(size):
        n = batch * size + k
        month = MONTHS[n % len(MONTHS)]
        day = 1 + n % 28
        common = {"id": f"{tag}-ev-{n:07d}", "occurred_at": f"{month}-{day:02d}T10:00:00Z"}
        kind = n % 20
        # An opportunity created in an earlier batch (its n % 20 is 0 or 1), if there is one.
        base = n - size
        earlier = base - base % 20 - 20 + kind - 18
        if earlier >= 0 and kind in (18, 19):
            opportunity = f"{tag}-opp-{earlier:07d}"
            if kind == 18:
                items.append(
                    {
                        **common,
                        "type": "opportunity.stage_changed",
                        "opportunity_id": opportunity,
                        "stage": "proposal",
                        "amount": f"{50_000 + earlier % 97 * 1_000}.00",
                        "currency": "EUR",
                    }
                )
            else:
                items.append(
                    {
                        **common,
                        "type": "opportunity.closed_won",
                        "opportunity_id": opportunity,
                        "amount": f"{40_000 + earlier % 89 * 1_000}.00",
                        "currency": "EUR",
                        "close_date": f"{month}-{day:02d}",
                    }
                )
        elif kind < 12 or kind >= 18:
            items.append(
                {
                    **common,
                    "type": "opportunity.created",
                    "opportunity_id": f"{tag}-opp-{n:07d}",
                    "account": f"Account {n % 500}",
                    "amount": f"{25_000 + n % 193 * 1_000}.00",
                    "currency": "EUR",
                    "stage": "qualification",
                    "close_date": f"{month}-28",
                }
            )
        else:
            items.append(
                {
                    **common,
                    "type": "proposal.submitted",
                    "account": f"Account {n % 500}",
                    "opportunity_id": f"{tag}-opp-{n - kind:07d}",
                }
            )
    return items


# --- kernel ---------------------------------------------------------------------------------


async def _prepare(client: ScorecardClient, i: int, *, targets: bool) -> tuple[str, Crm, str, int]:
    """An alliance with its scorecard open, the CRM-fed KPIs, targets, and acme's CRM;
    returns (alliance id, CRM, id of the proposals KPI, stream version)."""
    alliance_id = await client.open_scorecard(i)
    base = f"/alliances/{alliance_id}/scorecard"
    proposals, version = "", 0
    for spec in FED_KPIS:
        definition = {k: v for k, v in spec.items() if k != "target"}
        kpi = await client.command(f"{base}/kpis", {**definition, "owner_org": PARTNER_A})
        version = kpi["version"]
        if spec["feed"] == "proposals_submitted":
            proposals = kpi["id"]
        if targets and "target" in spec:
            for month in MONTHS:
                set_target = await client.command(
                    f"{base}/kpis/{kpi['id']}/targets", {"period": month, "target": spec["target"]}
                )
                version = set_target["version"]
    return alliance_id, await client.crm(alliance_id), proposals, version


async def _send_all(
    client: ScorecardClient, crm: Crm, bodies: Sequence[bytes]
) -> tuple[list[float], list[dict[str, Any]]]:
    latencies, reports = [], []
    for body in bodies:
        started = time.perf_counter()
        report = await client.send(crm, body)
        latencies.append(time.perf_counter() - started)
        if report["rejected"] or report["duplicates"]:
            raise RuntimeError(
                f"batch not wholly accepted: {report['rejected']} rejected, "
                f"{report['duplicates']} duplicates; first: "
                f"{[r for r in report['results'] if r['status'] != 'accepted'][:1]}"
            )
        reports.append(report)
    return latencies, reports


async def _relayed(dsn: str, timeout: float = 120.0) -> None:
    """Returns once scorecard's outbox relay has published every event committed so far
    (nothing after its checkpoint, in its own (transaction id, position) order)."""
    conn = await asyncpg.connect(dsn)
    query = """SELECT NOT EXISTS (
                   SELECT 1 FROM scorecard.events e, scorecard.relay_checkpoint c
                   WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position))
               AND EXISTS (SELECT 1 FROM scorecard.relay_checkpoint)"""
    deadline = time.perf_counter() + timeout
    try:
        while True:
            if await conn.fetchval(query):
                return
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the outbox relay has not caught up within {timeout} s")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def _run_senders(
    client: ScorecardClient, senders: list[tuple[str, Crm, list[bytes]]], dsn: str
) -> dict[str, Any]:
    """All senders at once; times accepted (last answer) and projected (every page caught
    up with its sender's last version), both from the first POST; and when the outbox relay
    had published everything (what the projection waits on)."""
    started = time.perf_counter()
    accepted_at: list[float] = []
    projected_at: list[float] = []
    relayed_at: list[float] = []
    latencies: list[float] = []
    versions: list[int] = []
    all_sent = asyncio.Event()

    async def relay_done() -> None:
        await all_sent.wait()
        await _relayed(dsn)
        relayed_at.append(time.perf_counter())

    async def one(alliance_id: str, crm: Crm, bodies: list[bytes]) -> None:
        found, reports = await _send_all(client, crm, bodies)
        accepted_at.append(time.perf_counter())
        if len(accepted_at) == len(senders):
            all_sent.set()
        latencies.extend(found)
        version = reports[-1]["version"]
        versions.append(version)
        await client.page(alliance_id, VIEW_PERIOD, min_version=version)
        projected_at.append(time.perf_counter())

    await asyncio.gather(relay_done(), *(one(*sender) for sender in senders))
    items = sum(len(json.loads(b)["events"]) for _, _, bodies in senders for b in bodies)
    accepted, projected = max(accepted_at) - started, max(projected_at) - started
    return {
        "items": items,
        "accepted_seconds": accepted,
        "projected_seconds": projected,
        "accepted_per_second": items / accepted,
        "projected_per_second": items / projected,
        "catch_up_after_last_answer_seconds": round(max(projected_at) - max(accepted_at), 3),
        "relay_done_after_last_answer_seconds": round(relayed_at[0] - max(accepted_at), 3),
        "batch_latency_ms": [round(x * 1000, 1) for x in latencies],
        "final_versions": versions,
    }


async def _kernel(
    stack: Stack,
    *,
    batches: int,
    items: int,
    senders: int,
    sender_batches: int,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    dsn = stack.dsn(DATABASE)
    with scorecard_stack(stack, DATABASE) as (governance_url, scorecard_url):
        client = ScorecardClient(governance_url, scorecard_url)
        try:
            setup_started = time.perf_counter()
            prepared = await asyncio.gather(
                *(_prepare(client, i, targets=i > 0) for i in range(senders + 2))
            )
            results["setup_seconds"] = round(time.perf_counter() - setup_started, 2)
            warm_up, measured, *others = prepared
            warm_id, warm_crm, _, _ = warm_up
            alliance_id, crm, proposals_kpi, setup_version = measured

            warm = [dumps({"events": batch_items("warm", b, 200)}) for b in range(2)]
            _, reports = await _send_all(client, warm_crm, warm)
            await client.page(warm_id, VIEW_PERIOD, min_version=reports[-1]["version"])

            bodies = [dumps({"events": batch_items("one", b, items)}) for b in range(batches)]
            results["body_bytes"] = len(bodies[0])
            one = await _run_senders(client, [(alliance_id, crm, bodies)], dsn)
            results["one"] = one

            # Sanity: every proposal counted once in the KPI it feeds, over all months.
            history = await client.scorecard.get(
                f"/alliances/{alliance_id}/scorecard/kpis/{proposals_kpi}/history",
                headers=client.headers,
            )
            counted = sum(Decimal(p["actual"] or 0) for p in history.json()["series"])
            sent = sum(
                item["type"] == "proposal.submitted"
                for body in bodies
                for item in json.loads(body)["events"]
            )
            if counted != sent:
                raise RuntimeError(f"proposals KPI counts {counted}, the CRM sent {sent}")
            one["events_appended"] = one["final_versions"][0] - setup_version

            many = [
                (
                    other_id,
                    other_crm,
                    [
                        dumps({"events": batch_items(f"s{s}", b, items)})
                        for b in range(sender_batches)
                    ],
                )
                for s, (other_id, other_crm, _, _) in enumerate(others)
            ]
            if many:
                results["many"] = await _run_senders(client, many, dsn)
            results["retried_commands"] = client.retried
        finally:
            await client.close()
    return results


# --- baseline and ladder --------------------------------------------------------------------


def _rows(bodies: Sequence[list[dict[str, Any]]]) -> list[list[tuple[str, str]]]:
    return [[(item["id"], json.dumps(item)) for item in batch] for batch in bodies]


async def _raw(dsn: str, batches: list[list[list[tuple[str, str]]]], *, copy: bool) -> float:
    """Each sender's batches, one transaction each, senders concurrently; rows/s."""
    conns = [await asyncpg.connect(dsn) for _ in batches]
    try:
        await conns[0].execute("TRUNCATE bench_raw.crm_items")

        async def write(conn: asyncpg.Connection, mine: list[list[tuple[str, str]]]) -> None:
            for rows in mine:
                async with conn.transaction():
                    if copy:
                        await conn.copy_records_to_table(
                            "crm_items", schema_name="bench_raw", records=rows
                        )
                    else:
                        await conn.executemany(RAW_INSERT, rows)

        started = time.perf_counter()
        await asyncio.gather(*(write(c, m) for c, m in zip(conns, batches, strict=True)))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return sum(len(rows) for mine in batches for rows in mine) / elapsed


def _domain(batches: Sequence[list[dict[str, Any]]], *, envelopes: bool) -> float:
    """The scorecard's pure work on the same batches, in this process: read each item,
    decide the batch (`ingest`), fold the events into the state (as the append does), and
    with `envelopes` build and serialise the CloudEvents the event store is sent. Items/s."""
    from pydantic import TypeAdapter

    from concord.domain import Actor
    from concord.events import EventRegistry
    from scorecard.domain.events import EVENTS
    from scorecard.domain.ingestion import IngestPipeline
    from scorecard.domain.kpi_numbers import KpiTarget, SetKpiTarget
    from scorecard.domain.kpis import DefineKpi, KpiDefinition
    from scorecard.domain.opening import OpenScorecard, ScorecardSetup
    from scorecard.domain.pipeline import PipelineItem
    from scorecard.domain.scorecard import ingest, scorecard

    by = Actor(sub="bench", org=PARTNER_A)
    registry = EventRegistry("scorecard")
    registry.register(*EVENTS)
    alliance_id = uuid.uuid4()
    state = scorecard.fold(
        scorecard.decide(
            scorecard.initial(),
            OpenScorecard(
                alliance_id=alliance_id,
                setup=ScorecardSetup(currency="EUR"),
                partners=(PARTNER_A, "globex"),
                by=by,
            ),
        )
    )
    for spec in FED_KPIS:
        kpi_id = uuid.uuid4()
        definition = KpiDefinition(
            **{k: v for k, v in spec.items() if k != "target"}, owner_org=PARTNER_A
        )
        state = scorecard.fold(
            scorecard.decide(
                state,
                DefineKpi(
                    kpi_id=kpi_id,
                    definition=definition,
                    partners=(PARTNER_A, "globex"),
                    by=by,
                ),
            ),
            state,
        )
        if "target" in spec:
            for month in MONTHS:
                target = KpiTarget(period=month, target=Decimal(str(spec["target"])))
                state = scorecard.fold(
                    scorecard.decide(state, SetKpiTarget(kpi_id=kpi_id, target=target, by=by)),
                    state,
                )
    reader = TypeAdapter[Any](PipelineItem)
    version = 100
    count = 0
    started = time.perf_counter()
    for batch in batches:
        parsed = tuple(reader.validate_python(item) for item in batch)
        outcome = ingest(state, IngestPipeline(parsed, PARTNER_A, by))
        state = scorecard.fold(outcome.events, state)
        if envelopes:
            for offset, event in enumerate(outcome.events, start=1):
                registry.envelope(
                    event,
                    stream_id=f"scorecard-{alliance_id}",
                    stream_version=version + offset,
                    alliance_id=str(alliance_id),
                    actor=by,
                ).model_dump_json()
            version += len(outcome.events)
        count += len(batch)
    return count / (time.perf_counter() - started)


# --- the benchmark --------------------------------------------------------------------------


async def _baselines(
    stack: Stack,
    one: list[list[dict[str, Any]]],
    many: list[list[list[dict[str, Any]]]],
) -> dict[str, float]:
    dsn = stack.dsn(DATABASE)
    admin = await asyncpg.connect(dsn)
    try:
        for statement in RAW_DDL:
            await admin.execute(statement)
    finally:
        await admin.close()
    one_rows, many_rows = [_rows(one)], [_rows(batches) for batches in many]
    await _raw(dsn, one_rows, copy=False)  # warm-up
    rates: dict[str, list[float]] = {"one": [], "one_copy": [], "many": []}
    for _ in range(2):
        rates["one"].append(await _raw(dsn, one_rows, copy=False))
        rates["one_copy"].append(await _raw(dsn, one_rows, copy=True))
        if many:
            rates["many"].append(await _raw(dsn, many_rows, copy=False))
    return {name: max(found) if found else float("nan") for name, found in rates.items()}


def run(
    stack: Stack,
    *,
    batches: int = 20,
    items: int = 1000,
    senders: int = 4,
    sender_batches: int = 5,
) -> tuple[list[Figure], dict[str, float]]:
    asyncio.run(stack.create_database(DATABASE))
    asyncio.run(stack.empty_jetstream())
    one = [batch_items("one", b, items) for b in range(batches)]
    many = [[batch_items(f"s{s}", b, items) for b in range(sender_batches)] for s in range(senders)]

    kernel = asyncio.run(
        _kernel(stack, batches=batches, items=items, senders=senders, sender_batches=sender_batches)
    )
    raw = asyncio.run(_baselines(stack, one, many))
    _domain(one[:2], envelopes=False)  # warm-up
    domain = max(_domain(one, envelopes=False) for _ in range(2))
    domain_envelopes = _domain(one, envelopes=True)

    k1 = kernel["one"]
    latencies = [x / 1000 for x in k1["batch_latency_ms"]]
    mix: dict[str, int] = {}
    for batch in one:
        for item in batch:
            mix[item["type"]] = mix.get(item["type"], 0) + 1
    details: dict[str, Any] = {
        "mode": "governance + scorecard as uvicorn subprocesses (1 worker each), "
        "CRM client in this process (httpx.AsyncClient), batches one after another",
        "batches": batches,
        "items_per_batch": items,
        "body_bytes": kernel["body_bytes"],
        "item_mix": mix,
        "setup_seconds": kernel["setup_seconds"],
        "retried_setup_commands": kernel["retried_commands"],
        "post_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "post_first_ms": k1["batch_latency_ms"][0],
        "post_last_ms": k1["batch_latency_ms"][-1],
        "post_mean_first_quarter_ms": round(
            statistics.fmean(k1["batch_latency_ms"][: max(1, batches // 4)]), 1
        ),
        "post_mean_last_quarter_ms": round(
            statistics.fmean(k1["batch_latency_ms"][-max(1, batches // 4) :]), 1
        ),
        "accepted_seconds": round(k1["accepted_seconds"], 3),
        "projected_seconds": round(k1["projected_seconds"], 3),
        "catch_up_after_last_answer_seconds": k1["catch_up_after_last_answer_seconds"],
        "relay_done_after_last_answer_seconds": k1["relay_done_after_last_answer_seconds"],
        "events_appended": k1["events_appended"],
        "raw_copy_rows_per_second": round(raw["one_copy"], 1),
        "domain_items_per_second": round(domain, 1),
        "domain_with_envelopes_items_per_second": round(domain_envelopes, 1),
        "batch_latency_ms": k1["batch_latency_ms"],
    }
    baseline = "asyncpg executemany of (id, jsonb) rows, one tx per batch"
    figures = [
        Figure(
            key="crm_accepted_1",
            label=f"5 CRM ingest accepted, 1 CRM, {batches}x{items}",
            unit="events/s",
            value=k1["accepted_per_second"],
            baseline=raw["one"],
            baseline_label=baseline,
            details=details,
        ),
        Figure(
            key="crm_projected_1",
            label="5 CRM ingest projected (page caught up), 1 CRM",
            unit="events/s",
            value=k1["projected_per_second"],
            baseline=raw["one"],
            baseline_label=baseline,
            details=details,
        ),
    ]
    if "many" in kernel:
        km = kernel["many"]
        many_details = {
            "senders": senders,
            "batches_per_sender": sender_batches,
            "items_per_batch": items,
            "accepted_seconds": round(km["accepted_seconds"], 3),
            "projected_seconds": round(km["projected_seconds"], 3),
            "catch_up_after_last_answer_seconds": km["catch_up_after_last_answer_seconds"],
            "relay_done_after_last_answer_seconds": km["relay_done_after_last_answer_seconds"],
            "post_p50_ms": round(
                percentile([x / 1000 for x in km["batch_latency_ms"]], 50) * 1000, 1
            ),
            "batch_latency_ms": km["batch_latency_ms"],
        }
        label = f"{senders} CRMs of {senders} alliances at once, {sender_batches}x{items} each"
        figures += [
            Figure(
                key=f"crm_accepted_{senders}",
                label=f"5 CRM ingest accepted, {senders} CRMs",
                unit="events/s",
                value=km["accepted_per_second"],
                baseline=raw["many"],
                baseline_label=baseline,
                details={"mode": label, **many_details},
            ),
            Figure(
                key=f"crm_projected_{senders}",
                label=f"5 CRM ingest projected, {senders} CRMs",
                unit="events/s",
                value=km["projected_per_second"],
                baseline=raw["many"],
                baseline_label=baseline,
                details={"mode": label, **many_details},
            ),
        ]
    ladder = {
        "raw executemany, one transaction per batch": raw["one"],
        "raw COPY, one transaction per batch": raw["one_copy"],
        "domain only: validate + ingest + fold (in-process)": domain,
        "+ build and serialise the CloudEvents": domain_envelopes,
        "kernel: accepted over HTTP (1 CRM)": k1["accepted_per_second"],
        "kernel: projected, page caught up (1 CRM)": k1["projected_per_second"],
    }
    return figures, ladder
