"""4. HTTP command throughput: POST /alliances on governance under real uvicorn, driven from
a separate process (`python -m bench.driver`), against GET /livez on the same server with
the same load as the baseline (so the ratio is the cost of a command vs a trivial request).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.figures import Figure
from bench.lag import charter
from bench.stack import JWT_SECRET, SECRETS_KEYS, Stack
from concord.auth import mint_token
from concord.devstack import free_port

DATABASE = "bench_http"
REPO = Path(__file__).resolve().parent.parent


def _die_with_parent() -> None:
    """The server gets SIGTERM if the benchmark dies, so no orphan is left listening."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def governance_server(stack: Stack, log: Path) -> Iterator[str]:
    with service_server(stack, log, "governance", DATABASE) as url:
        yield url


@contextlib.contextmanager
def service_server(stack: Stack, log: Path, service: str, database: str) -> Iterator[str]:
    """`uvicorn <service>.app:create_app --factory` (1 worker) on a free loopback port, on
    the benchmark's PostgreSQL database `database` and NATS; yields its URL once ready."""
    port = free_port()
    env = {
        **os.environ,
        "CONCORD_DATABASE_URL": stack.url(database),
        "CONCORD_NATS_URL": stack.nats.url,
        "CONCORD_JWT_SECRET": JWT_SECRET,
        "CONCORD_SECRETS_KEYS": SECRETS_KEYS,
    }
    command = [
        sys.executable, "-m", "uvicorn", f"{service}.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    with log.open("ab") as out:
        server = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{service} exited with {server.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} not ready within 60s; see {log}")
            time.sleep(0.1)
        yield url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _drive(
    url: str, method: str, path: str, count: int, concurrency: int, **extra: Any
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.driver", url, method, path,
        "--count", str(count), "--concurrency", str(concurrency),
    ]  # fmt: skip
    if extra.get("token"):
        command += ["--token", extra["token"]]
    if extra.get("body") is not None:
        command += ["--body", json.dumps(extra["body"])]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"driver failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(stack: Stack, *, count: int = 2000, concurrency: int = 16) -> list[Figure]:
    asyncio.run(stack.create_database(DATABASE))
    token = mint_token(JWT_SECRET, sub="bench", org="acme", roles=["alliance_manager"])
    with governance_server(stack, stack.root / "governance.log") as url:
        livez = _drive(url, "GET", "/livez", count, concurrency)
        create = _drive(url, "POST", "/alliances", count, concurrency, token=token, body=charter(0))
    for result, expected in ((livez, "200"), (create, "201")):
        if set(result["statuses"]) != {expected}:
            raise RuntimeError(f"{result['method']} {result['path']} answered {result['statuses']}")
    mode = "uvicorn subprocess (1 worker), driver in a separate process (httpx.AsyncClient)"
    details = {"mode": mode, "concurrency": concurrency, "livez": livez, "create": create}
    baseline = f"GET /livez, same server, {concurrency} concurrent"
    return [
        Figure(
            key="http_create_rps",
            label=f"4 HTTP POST /alliances, {concurrency} conc",
            unit="req/s",
            value=create["requests_per_second"],
            baseline=livez["requests_per_second"],
            baseline_label=baseline,
            details=details,
        ),
        Figure(
            key="http_create_p99",
            label="4 HTTP POST /alliances p99",
            unit="ms",
            value=create["p99_ms"],
            baseline=livez["p99_ms"],
            baseline_label=baseline,
            details=details,
        ),
    ]
