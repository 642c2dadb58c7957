"""`python -m bench` (`make bench`): run every benchmark on a fresh embedded stack, print the
table, write bench/results/latest.json. `--quick` runs small counts, as a smoke test.

Exit status: 0 when every benchmark ran (whether or not its target was met), 1 when one of
them could not run at all (a broken harness should not look like a result).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench import (
    append,
    command_path,
    crm,
    http_load,
    lag,
    reactions,
    rebuild,
    scorecard_view,
    timers,
)
from bench.figures import Figure
from bench.report import table, write_json
from bench.stack import Stack, embedded_stack, versions

ALL = ("append", "lag", "rebuild", "http", "crm", "view", "commands", "timers", "reactions")


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "append": {"events": {1: 300, 8: 800}, "seconds": 2.0, "rounds": 1},
            "lag": {"commands": 100, "seconds": 20.0},
            "rebuild": {"events": 2000, "rounds": 1},
            "http": {"count": 200, "concurrency": 16},
            "crm": {"batches": 3, "items": 200, "senders": 2, "sender_batches": 2},
            "view": {"kpis": 20, "months": 6, "initiatives": 12, "reports": 3, "requests": 50},
            "commands": {"events": {1: 300, 8: 800}, "seconds": 2.0, "rounds": 1},
            "timers": {"timers": 1000},
            "reactions": {"events": 500, "rounds": 1},
        }
    return {
        "append": {"events": {1: 3000, 8: 8000}, "seconds": 6.0, "rounds": 2},
        "lag": {"commands": 1000, "seconds": 60.0},
        "rebuild": {"events": 20_000, "rounds": 2},
        "http": {"count": 2000, "concurrency": 16},
        "crm": {"batches": 20, "items": 1000, "senders": 4, "sender_batches": 5},
        "view": {
            "kpis": 20,
            "months": 24,
            "initiatives": 12,
            "reports": 3,
            "requests": 300,
            "concurrency": 4,
        },
        "commands": {"events": {1: 3000, 8: 8000}, "seconds": 6.0, "rounds": 2},
        "timers": {"timers": 10_000},
        "reactions": {"events": 5000, "rounds": 2},
    }


def _notes(figures: list[Figure]) -> list[str]:
    by_key = {f.key: f for f in figures}
    notes = []
    if "lag_p99" in by_key:
        d = by_key["lag_p99"].details
        notes.append(
            f"2 lag: {d['commands']} alliances created one after another, {d['mode']}; "
            f"POST latency p50 {d['post_latency_p50_ms']:.2f} ms, "
            f"p99 {d['post_latency_p99_ms']:.2f} ms; "
            f"lag split: commit->NATS (relay) p50 {d['relay_hop_p50_ms']:.2f} ms, "
            f"NATS->row (projection) p50 {d['projection_hop_p50_ms']:.2f} ms; "
            f"max {d['lag_max_ms']:.2f} ms; missed {d['missed_after_10s']}"
        )
    if "rebuild" in by_key:
        d = by_key["rebuild"].details
        notes.append(
            f"3 rebuild: setup appended {d['events']:,} events in {d['setup_append_seconds']} s "
            f"and the outbox relay published them in {d['setup_relay_publish_seconds']} s "
            f"({d['events'] / d['setup_relay_publish_seconds']:,.0f} events/s)"
        )
    if "http_create_rps" in by_key:
        d = by_key["http_create_rps"].details
        c, z = d["create"], d["livez"]
        notes.append(
            f"4 http: {d['mode']}; POST p50 {c['p50_ms']:.1f} ms ({c['requests']} requests), "
            f"GET /livez p50 {z['p50_ms']:.1f} ms ({z['requests']} requests)"
        )
    if "crm_accepted_1" in by_key:
        d = by_key["crm_accepted_1"].details
        notes.append(
            f"5 crm: {d['batches']} batches x {d['items_per_batch']} items "
            f"({d['body_bytes'] / 1024:.0f} KiB each), {d['events_appended']:,} events "
            f"appended; POST p50 {d['post_p50_ms']:.0f} ms (mean of the first quarter "
            f"{d['post_mean_first_quarter_ms']:.0f} ms, of the last "
            f"{d['post_mean_last_quarter_ms']:.0f} ms); after the last answer the relay needed "
            f"{d['relay_done_after_last_answer_seconds']:.1f} s more and the page "
            f"{d['catch_up_after_last_answer_seconds']:.1f} s; domain alone "
            f"{d['domain_items_per_second']:,.0f} items/s; setup {d['setup_seconds']} s"
        )
    if "view_p50" in by_key:
        d = by_key["view_p50"].details
        r = d["reads_only"]
        notes.append(
            f"6 view: {d['kpis']} KPIs x {d['months']} months, {d['initiatives']} initiatives x "
            f"{d['progress_reports_each']} reports, page version {d['page_version']}; setup "
            f"{d['setup_commands']} commands in {d['setup_seconds']} s "
            f"({d['setup_retried_409_or_404']} sent again after 409); the page's "
            f"{r['statements']} reads alone (SQLAlchemy, no HTTP) p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms"
        )
    if "timers_fired" in by_key:
        d = by_key["timers_fired"].details
        notes.append(
            f"8 timers: {d['timers']:,} timers, scheduled by as many commands in "
            f"{d['setup_schedule_seconds']} s ({d['setup_commands_per_second']:,.0f} commands/s, "
            f"8 at a time), fired in {d['kernel_seconds']} s (raw {d['raw_seconds']} s), "
            f"fire_due batches of {d['batch_size']}"
        )
    if "reactions_handled" in by_key:
        d = by_key["reactions_handled"].details
        notes.append(
            f"9 reaction: {d['events']:,} events, fetched {d['batch_size']} at a time; "
            f"kernel rounds {d['kernel_rounds']} events/s, raw rounds {d['raw_rounds']} events/s"
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    args = parser.parse_args(argv)
    # Kernel warnings such as "NATS connection lost" at each shutdown are expected here;
    # errors still show.
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

    sizes = _sizes(args.quick)
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    figures: list[Figure] = []
    ladders: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}

    def step(name: str, work: Any) -> None:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            work()
        except Exception as error:
            traceback.print_exc()
            errors[name] = f"{type(error).__name__}: {error}"
        print(f"  {name} took {time.perf_counter() - begun:.1f} s", file=sys.stderr, flush=True)

    def run_append(stack: Stack) -> None:
        found, steps = asyncio.run(append.run(stack, **sizes["append"]))
        figures.extend(found)
        ladders.update({f"1 append, {k}": v for k, v in steps.items()})

    def run_lag(stack: Stack) -> None:
        figures.extend(asyncio.run(lag.run(stack, **sizes["lag"])))

    def run_rebuild(stack: Stack) -> None:
        found, steps = asyncio.run(rebuild.run(stack, **sizes["rebuild"]))
        figures.extend(found)
        ladders["3 rebuild"] = steps

    def run_http(stack: Stack) -> None:
        figures.extend(http_load.run(stack, **sizes["http"]))

    def run_crm(stack: Stack) -> None:
        found, steps = crm.run(stack, **sizes["crm"])
        figures.extend(found)
        ladders["5 crm, 1 CRM"] = steps

    def run_view(stack: Stack) -> None:
        figures.extend(scorecard_view.run(stack, **sizes["view"]))

    def run_commands(stack: Stack) -> None:
        found, steps = asyncio.run(command_path.run(stack, **sizes["commands"]))
        figures.extend(found)
        ladders.update({f"7 command path, {k}": v for k, v in steps.items()})

    def run_timers(stack: Stack) -> None:
        figures.extend(asyncio.run(timers.run(stack, **sizes["timers"])))

    def run_reactions(stack: Stack) -> None:
        figures.extend(asyncio.run(reactions.run(stack, **sizes["reactions"])))

    runners = {
        "append": run_append,
        "lag": run_lag,
        "rebuild": run_rebuild,
        "http": run_http,
        "crm": run_crm,
        "view": run_view,
        "commands": run_commands,
        "timers": run_timers,
        "reactions": run_reactions,
    }
    print("starting embedded PostgreSQL and NATS ...", file=sys.stderr, flush=True)
    with embedded_stack() as stack:
        for name in ALL:
            if name in args.only:
                step(name, lambda runner=runners[name]: runner(stack))

    header = {
        "started_at": started_at.isoformat(),
        "duration_seconds": round(time.perf_counter() - started, 1),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "quick": args.quick,
        **versions(),
    }
    notes = _notes(figures)
    text = table(figures, header=header, ladders=ladders, notes=notes, errors=errors)
    print(text)
    path = write_json(
        figures, header=header, ladders=ladders, notes=notes, errors=errors, text=text
    )
    print(f"\nwrote {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
