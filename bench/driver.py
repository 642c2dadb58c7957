"""The load generator for benchmark 4, run as its own process:

    python -m bench.driver URL METHOD PATH --count N --concurrency C [--token T] [--body JSON]

Sends N requests (after a short untimed warm-up) from C concurrent httpx.AsyncClient workers
to a loopback URL and prints one JSON line: requests/s, latency percentiles, status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.figures import percentile

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


async def drive(
    url: str,
    method: str,
    path: str,
    *,
    count: int,
    concurrency: int,
    warmup: int,
    token: str | None,
    body: Any,
    seconds: float,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def send() -> tuple[int, float]:
            started = time.perf_counter()
            response = await client.request(method, path, json=body)
            await response.aread()
            return response.status_code, time.perf_counter() - started

        async def worker(quota: int, deadline: float, out: list[tuple[int, float]]) -> None:
            for _ in range(quota):
                if time.perf_counter() > deadline:
                    return
                out.append(await send())

        def split(total: int) -> list[int]:
            return [
                total // concurrency + (1 if i < total % concurrency else 0)
                for i in range(concurrency)
            ]

        warm: list[tuple[int, float]] = []
        await asyncio.gather(*(worker(q, time.perf_counter() + 30, warm) for q in split(warmup)))
        results: list[tuple[int, float]] = []
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(worker(q, deadline, results) for q in split(count)))
        elapsed = time.perf_counter() - started

    latencies = [latency for _, latency in results]
    return {
        "method": method,
        "path": path,
        "requests": len(results),
        "concurrency": concurrency,
        "seconds": elapsed,
        "requests_per_second": len(results) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "statuses": dict(Counter(str(status) for status, _ in results)),
        "warmup_statuses": dict(Counter(str(status) for status, _ in warm)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.driver")
    parser.add_argument("url")
    parser.add_argument("method")
    parser.add_argument("path")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="hard cap on the timed part")
    parser.add_argument("--token")
    parser.add_argument("--body", help="JSON request body")
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname not in LOOPBACK:
        print("the driver only sends to loopback addresses", file=sys.stderr)
        return 2
    result = asyncio.run(
        drive(
            args.url,
            args.method,
            args.path,
            count=args.count,
            concurrency=args.concurrency,
            warmup=args.warmup,
            token=args.token,
            body=json.loads(args.body) if args.body else None,
            seconds=args.seconds,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
