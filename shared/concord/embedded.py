"""The embedded default: a real PostgreSQL and a real NATS that `make run` starts under
`.concord/` (data survives restarts), the development secret `make token` signs with, and
every declared service as a uvicorn process of its own."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from concord.devstack import EmbeddedNats, EmbeddedPostgres
from concord.service import services

HOME = Path(os.environ.get("CONCORD_HOME", ".concord"))
PG_PORT = 55432
NATS_PORT = 54222
NATS_MONITOR_PORT = 58222
DATABASE = "concord"


def dev_secret() -> str:
    """The HS256 secret shared by `make run` and `make token`, made once per checkout."""
    path = HOME / "jwt-secret"
    if not path.exists():
        HOME.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def postgres_for(cleanup: ExitStack) -> None:
    """Point this process at the embedded PostgreSQL, starting it (until `cleanup`) when
    `make run` is not up."""
    os.environ.setdefault("CONCORD_JWT_SECRET", dev_secret())
    pg = EmbeddedPostgres(HOME / "postgres", PG_PORT)
    os.environ["CONCORD_DATABASE_URL"] = pg.url(DATABASE)
    if not _listening(PG_PORT):
        pg.start()
        cleanup.callback(pg.stop)
        pg.ensure_database(DATABASE)


def run_everything() -> int:
    """PostgreSQL, NATS and every declared service, stopped in order on Ctrl-C."""
    HOME.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(HOME / "postgres", PG_PORT)
    nats = EmbeddedNats(HOME / "nats", NATS_PORT, NATS_MONITOR_PORT)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print(f"PostgreSQL  {pg.url(DATABASE, driver='postgresql')}  (data in {HOME}/postgres)")
        pg.start()
        pg.ensure_database(DATABASE)
        print(f"NATS        {nats.url}  (JetStream in {HOME}/nats)")
        nats.start()
        env = {
            **os.environ,
            "CONCORD_DATABASE_URL": pg.url(DATABASE),
            "CONCORD_NATS_URL": nats.url,
            "CONCORD_JWT_SECRET": dev_secret(),
        }
        for name, declared in services().items():
            port = declared.port
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        declared.factory,
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--no-access-log",
                        "--timeout-graceful-shutdown",
                        "20",
                    ],
                    env=env,
                    start_new_session=True,  # stopped by us, in order, not by the terminal
                )
            )
            print(f"{name:<12}http://127.0.0.1:{port}  docs http://127.0.0.1:{port}/docs")
        print("A token: make token ORG=acme ROLES=alliance_manager   Ctrl-C stops everything.")
        while not stopping:
            if any(child.poll() is not None for child in children):
                print("a service exited; stopping everything", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        nats.stop()
        pg.stop()
        print("stopped")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
