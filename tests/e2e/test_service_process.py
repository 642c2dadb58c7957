"""A service as SREs run it: its own uvicorn process, configured from the environment, and
stopped with SIGTERM (as Kubernetes does) without losing what it accepted."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import httpx

from concord.bus import stream_name
from concord.devstack import free_port
from tests.conftest import Stack, auth, charter, nats_as, process_env, until_ready


async def test_sigterm_finishes_in_flight_work_and_publishes_every_accepted_event(
    database_url: str, nats_url: str, stack: Stack
) -> None:
    port = free_port()
    env = process_env(database_url, nats_url, "governance")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "governance.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await until_ready(client)
            posts = [
                client.post("/alliances", json=charter(name=f"Alliance {i}"), headers=auth())
                for i in range(20)
            ]
            # Requests that connect after the signal are refused (the server stopped
            # listening); those already in flight must be answered.
            pending = asyncio.gather(*posts, return_exceptions=True)
            await asyncio.sleep(0.05)
            server.send_signal(signal.SIGTERM)
            outcomes = await pending
    finally:
        try:
            code = await asyncio.to_thread(server.wait, 30)
        finally:
            if server.poll() is None:
                server.kill()
    log = server.stdout.read().decode() if server.stdout else ""
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports it.
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log

    responses = [o for o in outcomes if isinstance(o, httpx.Response)]
    refused = [o for o in outcomes if not isinstance(o, httpx.Response)]
    assert all(isinstance(o, httpx.TransportError) for o in refused), refused
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    accepted = [r.json()["id"] for r in responses]
    assert accepted, "at least the requests in flight before SIGTERM are answered"
    nc = await nats_as(stack)
    try:
        info = await nc.jetstream().stream_info(stream_name("governance"))
        assert info.state.messages == len(accepted)
    finally:
        await nc.close()
