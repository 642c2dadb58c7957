"""6. Scorecard view latency: the one-page scorecard of a well-filled alliance.

Setup (not timed, but reported): governance and scorecard as uvicorn subprocesses (1 worker
each) on one database; one alliance with its scorecard open, `kpis` KPIs (leading and
lagging across the five dimensions, some headline, a few private to acme, a few where lower
is better) with a target and an actual for each of `months` monthly periods, `initiatives`
initiatives with `reports` progress reports each, an objective per dimension linked into a
chain, and a few benefits; all through the HTTP API, `concurrency` commands at a time (they
share one stream, so some conflict and are sent again). Then the page is awaited at the
last command's version.

Kernel: `GET /alliances/{id}/scorecard?period=<last month>` from `python -m bench.driver`
(a separate process), `requests` one after another after 100 untimed ones.
Baseline: GET /livez on the same server, driven the same way (as benchmark 4).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import date
from typing import Any

from bench.figures import Figure, percentile
from bench.http_load import _drive
from bench.scorecard_client import PARTNER_A, PARTNER_B, ScorecardClient, auth, scorecard_stack
from bench.stack import Stack

DATABASE = "bench_view"
DIMENSIONS = ("commercial", "technical", "strategic", "cultural", "operational")
UNITS = (
    {"unit": "EUR", "currency": "EUR"},
    {"unit": "%"},
    {"unit": "deals"},
    {"unit": "days", "good_direction": "lower"},
)


def last_months(count: int) -> list[str]:
    """`count` months ending 2026-12."""
    first = 2026 * 12 + 11 - (count - 1)
    return [f"{m // 12}-{m % 12 + 1:02d}" for m in range(first, first + count)]


def kpi(i: int) -> dict[str, Any]:
    return {
        "name": f"KPI {i:02d}",
        "description": "Measured monthly at the joint review",
        "dimension": DIMENSIONS[i % len(DIMENSIONS)],
        "kind": "leading" if (i // len(DIMENSIONS)) % 2 == 0 else "lagging",
        **UNITS[i % len(UNITS)],
        "owner_org": PARTNER_A,
        "visibility": "private" if i % 7 == 6 else "shared",
        "headline": i % 6 == 0,
    }


def numbers(i: int, m: int) -> tuple[str, str]:
    """(target, actual) for KPI i in month m: actuals around the target, some off track."""
    target = 100 + 10 * i + 2 * m
    actual = target * (70 + (i * 7 + m * 13) % 50) / 100
    return f"{target}", f"{actual:.2f}"


async def _setup(
    client: ScorecardClient,
    *,
    kpis: int,
    months: int,
    initiatives: int,
    reports: int,
    concurrency: int,
) -> tuple[str, int, int]:
    """Returns (alliance id, its version after the last command, commands sent)."""
    alliance_id = await client.open_scorecard(0)
    base = f"/alliances/{alliance_id}/scorecard"
    periods = last_months(months)
    version = 0
    sent = 1

    async def run_all(commands: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        nonlocal version, sent
        queue = list(reversed(commands))
        results: list[dict[str, Any]] = []

        async def worker() -> None:
            nonlocal version
            while queue:
                path, body = queue.pop()
                result = await client.command(path, body)
                version = max(version, result.get("version", 0))
                results.append(result)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        sent += len(commands)
        return results

    defined = await run_all([(f"{base}/kpis", kpi(i)) for i in range(kpis)])
    by_name = {d["name"]: d["id"] for d in defined}
    ids = [by_name[f"KPI {i:02d}"] for i in range(kpis)]
    values = []
    for i, kpi_id in enumerate(ids):
        for m, period in enumerate(periods):
            target, actual = numbers(i, m)
            values.append((f"{base}/kpis/{kpi_id}/targets", {"period": period, "target": target}))
            values.append((f"{base}/kpis/{kpi_id}/actuals", {"period": period, "actual": actual}))
    await run_all(values)

    launched = await run_all(
        [
            (
                f"{base}/initiatives",
                {
                    "name": f"Initiative {j:02d}",
                    "description": "A joint effort the steering committee follows",
                    "dimension": DIMENSIONS[j % len(DIMENSIONS)],
                    "owner_org": PARTNER_A,
                    "owner_name": "Alex Doe",
                    "leading_indicator": "Milestones met on time",
                    "due_date": date(2026, 6 + j % 7, 28).isoformat(),
                },
            )
            for j in range(initiatives)
        ]
    )
    progress = []
    for j, initiative in enumerate(launched):
        for r in range(reports):
            month = periods[-reports + r] if reports <= len(periods) else periods[-1]
            completion = min(100, 20 + 25 * r + j % 4 * 5)
            progress.append(
                (
                    f"{base}/initiatives/{initiative['id']}/progress",
                    {
                        "completion": completion,
                        "status": "done"
                        if completion == 100
                        else ("at_risk" if (j + r) % 5 == 0 else "in_progress"),
                        "as_of": f"{month}-15",
                        "note": f"Report {r + 1}",
                    },
                )
            )
    # Reports on one initiative in order (as_of moves forward); initiatives in parallel.
    for r in range(reports):
        await run_all(progress[r::reports])

    objectives = []
    for d, dimension in enumerate(DIMENSIONS):
        mine = [ids[i] for i in range(kpis) if i % len(DIMENSIONS) == d][:20]
        objective = await client.command(
            f"{base}/objectives",
            {"name": f"Objective: {dimension}", "dimension": dimension, "kpi_ids": mine},
        )
        objectives.append(objective["id"])
        sent += 1
    await run_all(
        [
            (f"{base}/strategy-map/links", {"cause_id": cause, "effect_id": effect})
            for cause, effect in itertools.pairwise(objectives)
        ]
    )
    await run_all(
        [
            (
                f"{base}/benefits",
                {
                    "partner_org": (PARTNER_A, PARTNER_B)[b % 2],
                    "kind": "revenue",
                    "amount": f"{10_000 * (b + 1)}.00",
                    "currency": "EUR",
                    "period": periods[-1 - b],
                    "evidence": "Signed joint deal",
                },
            )
            for b in range(6)
        ]
    )
    return alliance_id, version, sent


async def _prepare(
    governance_url: str, scorecard_url: str, **sizes: Any
) -> tuple[str, dict[str, Any]]:
    client = ScorecardClient(governance_url, scorecard_url)
    try:
        started = time.perf_counter()
        alliance_id, version, sent = await _setup(client, **sizes)
        setup_seconds = time.perf_counter() - started
        page = await client.page(alliance_id, last_months(sizes["months"])[-1], min_version=version)
        projected_seconds = time.perf_counter() - started
    finally:
        await client.close()
    cards = len(page["goals"]) + sum(
        len(cards) for section in ("leading", "lagging") for cards in page[section].values()
    )
    if cards != sizes["kpis"] or len(page["initiatives"]) != sizes["initiatives"]:
        raise RuntimeError(
            f"the page shows {cards} KPIs and {len(page['initiatives'])} initiatives"
        )
    return alliance_id, {
        "setup_commands": sent,
        "setup_seconds": round(setup_seconds, 2),
        "setup_commands_per_second": round(sent / setup_seconds, 1),
        "setup_retried_409_or_404": client.retried,
        "page_caught_up_seconds": round(projected_seconds - setup_seconds, 3),
        "page_version": page["version"],
        "page_kpi_cards": cards,
        "page_off_track": sum(
            card["status"] == "off_track"
            for card in page["goals"]
            + [c for s in ("leading", "lagging") for cs in page[s].values() for c in cs]
        ),
    }


async def _reads(url: str, alliance_id: str, period: str, count: int) -> dict[str, float]:
    """The page's reads alone: the SQL statements the route runs (scorecard.api.queries), on
    one pooled SQLAlchemy connection per page as the route takes it, in this process: no
    HTTP, no auth, no view building. Latency of one page's worth, in ms."""
    from uuid import UUID

    from concord.db import create_engine
    from concord.membership import Alliances
    from scorecard.api import queries
    from scorecard.domain import periods

    statements = [
        Alliances("scorecard")._known,
        queries.board,
        queries.kpis,
        queries.numbers_of_kpis,
        queries.initiatives,
        queries.progress,
        queries.balance,
        queries.objectives,
        queries.links,
    ]
    params = {
        "id": UUID(alliance_id),
        "org": PARTNER_A,
        "through": periods.order(period),
        "min_version": 0,
    }
    queries = [(s, {k: params[k] for k in s.compile().params}) for s in statements]
    engine = create_engine(url, pool_size=1)
    samples: list[float] = []
    try:
        for i in range(count + 50):
            started = time.perf_counter()
            async with engine.connect() as conn:
                for statement, bound in queries:
                    (await conn.execute(statement, bound)).all()
            if i >= 50:
                samples.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    return {
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "statements": len(statements),
    }


def run(
    stack: Stack,
    *,
    kpis: int = 20,
    months: int = 24,
    initiatives: int = 12,
    reports: int = 3,
    requests: int = 300,
    concurrency: int = 4,
) -> list[Figure]:
    asyncio.run(stack.create_database(DATABASE))
    asyncio.run(stack.empty_jetstream())
    sizes = {
        "kpis": kpis,
        "months": months,
        "initiatives": initiatives,
        "reports": reports,
        "concurrency": concurrency,
    }
    period = last_months(months)[-1]
    token = auth(PARTNER_A)["Authorization"].removeprefix("Bearer ")
    with scorecard_stack(stack, DATABASE) as (governance_url, scorecard_url):
        alliance_id, setup = asyncio.run(_prepare(governance_url, scorecard_url, **sizes))
        path = f"/alliances/{alliance_id}/scorecard?period={period}"
        livez = _drive(scorecard_url, "GET", "/livez", requests, 1)
        view = _drive(scorecard_url, "GET", path, requests, 1, token=token)
        reads = asyncio.run(_reads(stack.url(DATABASE), alliance_id, period, requests))
    for result in (livez, view):
        if set(result["statuses"]) != {"200"}:
            raise RuntimeError(f"GET {result['path']} answered {result['statuses']}")
    details = {
        "mode": "scorecard as a uvicorn subprocess (1 worker), driver in a separate process, "
        "requests one after another",
        "kpis": kpis,
        "months": months,
        "initiatives": initiatives,
        "progress_reports_each": reports,
        "period": period,
        **setup,
        "reads_only": {k: round(v, 3) for k, v in reads.items()},
        "page": view,
        "livez": livez,
    }
    baseline = "GET /livez, same server, sequential"
    return [
        Figure(
            key="view_p50",
            label=f"6 scorecard page p50, {kpis} KPIs x {months} months",
            unit="ms",
            value=view["p50_ms"],
            baseline=livez["p50_ms"],
            baseline_label=baseline,
            details=details,
        ),
        Figure(
            key="view_p99",
            label="6 scorecard page p99",
            unit="ms",
            value=view["p99_ms"],
            baseline=livez["p99_ms"],
            baseline_label=baseline,
            details=details,
        ),
    ]
