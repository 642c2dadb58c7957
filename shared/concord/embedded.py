"""The embedded default: a real PostgreSQL and a real NATS that `make run` starts under
`.concord/` (data survives restarts), the development secret `make token` signs with, a NATS
user per service (and `admin`, for an operator), and every declared service as a uvicorn
process of its own."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path

from concord.bus import service_permissions
from concord.devstack import EmbeddedNats, EmbeddedPostgres, NatsUser
from concord.membership import CHARTER
from concord.service import Service, services

HOME = Path(os.environ.get("CONCORD_HOME", ".concord"))
PG_PORT = 55432
NATS_PORT = 54222
NATS_MONITOR_PORT = 58222
DATABASE = "concord"
NATS_ADMIN = "admin"  # may do anything: re-feeding a stream by hand, looking around


def dev_secret() -> str:
    """The HS256 secret shared by `make run` and `make token`, made once per checkout."""
    path = HOME / "jwt-secret"
    if not path.exists():
        HOME.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def nats_password(user: str) -> str:
    """The embedded NATS's password for `user`, made once per checkout."""
    path = HOME / "nats-users.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if user not in known:
        HOME.mkdir(parents=True, exist_ok=True)
        known[user] = secrets.token_urlsafe(24)
        path.write_text(json.dumps(known, indent=2))
        path.chmod(0o600)
    return known[user]


def nats_login(service: str) -> dict[str, str]:
    """The environment that makes `service` connect to the embedded NATS as itself."""
    return {"CONCORD_NATS_USER": service, "CONCORD_NATS_PASSWORD": nats_password(service)}


def reads(declared: Service) -> set[str]:
    """The services whose streams `declared` follows: governance's charter (every runtime's
    `alliances`), and the sources of its projections and reactions."""
    sources = {p.source for p in declared.projections()} | {r.source for r in declared.reactions}
    return {CHARTER.service, *sources}


def nats_users(
    password: Callable[[str], str], also: Mapping[str, Iterable[str]] | None = None
) -> list[NatsUser]:
    """`admin`, and a user per declared service (and per `also`: a service and what it
    reads), each publishing only its own events (`concord.bus.service_permissions`)."""
    readers = {d.settings.service: reads(d) for d in services().values()} | dict(also or {})
    return [
        NatsUser(NATS_ADMIN, password(NATS_ADMIN)),
        *(NatsUser(s, password(s), service_permissions(s, r)) for s, r in readers.items()),
    ]


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
    nats = EmbeddedNats(HOME / "nats", NATS_PORT, NATS_MONITOR_PORT, nats_users(nats_password))
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
                    env={**env, **nats_login(declared.settings.service)},
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
