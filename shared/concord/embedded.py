"""The embedded default: a real PostgreSQL and a real NATS that `make run` starts under
`.concord/` (data survives restarts), the development secrets `make run` and `make token`
share (kept under `.concord/` too), a NATS user per service (and `admin`, for an operator),
and every declared service as a uvicorn process of its own. Every port is checked before
anything starts; `CONCORD_PORT_OFFSET` moves them all."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from concord import secrets as sealing
from concord.bus import service_permissions
from concord.devstack import EmbeddedNats, EmbeddedPostgres, NatsUser, kept_secret
from concord.membership import CHARTER
from concord.service import Service, services

HOME = Path(os.environ.get("CONCORD_HOME", ".concord"))
PORT_OFFSET = "CONCORD_PORT_OFFSET"
PG_PORT = 55432
NATS_PORT = 54222
NATS_MONITOR_PORT = 58222
DATABASE = "concord"
NATS_ADMIN = "admin"  # may do anything: re-feeding a stream by hand, looking around
# Offsets suggested when a port is taken: each moves every port clear of the default ones.
SUGGESTED_OFFSETS = range(100, 1001, 100)


def dev_secret() -> str:
    """The HS256 secret shared by `make run` and `make token`, made once per checkout."""
    return kept_secret(HOME / "jwt-secret", lambda: secrets.token_urlsafe(48))


def dev_secrets_keys() -> str:
    """The Fernet key that seals secrets at rest on `make run`, made once per checkout."""
    return kept_secret(HOME / "secrets-keys", sealing.new_key)


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


@dataclass(frozen=True)
class Ports:
    """Every port `make run` listens on, all moved by one offset (`CONCORD_PORT_OFFSET`)."""

    offset: int = 0

    @property
    def postgres(self) -> int:
        return PG_PORT + self.offset

    @property
    def nats(self) -> int:
        return NATS_PORT + self.offset

    @property
    def nats_monitor(self) -> int:
        return NATS_MONITOR_PORT + self.offset

    def services(self) -> dict[str, int]:
        return {name: declared.port + self.offset for name, declared in services().items()}

    def every(self) -> dict[str, int]:
        """What listens where, by the name `make run` shows it under."""
        fixed = {"PostgreSQL": self.postgres, "NATS": self.nats, "NATS monitor": self.nats_monitor}
        return {**fixed, **self.services()}


def ports() -> Ports:
    raw = os.environ.get(PORT_OFFSET, "0")
    try:
        chosen = Ports(int(raw))
    except ValueError:
        raise SystemExit(f"{PORT_OFFSET} must be a whole number of ports, not {raw!r}") from None
    if not all(0 < port < 65536 for port in chosen.every().values()):
        raise SystemExit(f"{PORT_OFFSET}={raw} moves a port outside 1-65535")
    return chosen


def embedded_postgres(at: Ports) -> EmbeddedPostgres:
    return EmbeddedPostgres(HOME / "postgres", at.postgres)


def embedded_nats(at: Ports) -> EmbeddedNats:
    return EmbeddedNats(HOME / "nats", at.nats, at.nats_monitor, nats_users(nats_password))


def stack_environment(at: Ports) -> dict[str, str]:
    """What a service process needs to find `make run`'s PostgreSQL and NATS, and the
    development secrets (the code has no default secret)."""
    return {
        "CONCORD_DATABASE_URL": embedded_postgres(at).url(DATABASE),
        "CONCORD_NATS_URL": embedded_nats(at).url,
        "CONCORD_JWT_SECRET": dev_secret(),
        sealing.SETTING: dev_secrets_keys(),
    }


def use_embedded_stack(service: str | None = None) -> None:
    """Point this process (a CLI command) at `make run`'s stack, connecting to its NATS as
    `service`, unless CONCORD_DATABASE_URL says where another stack is."""
    if "CONCORD_DATABASE_URL" in os.environ:
        return
    login = nats_login(service) if service is not None else {}
    for name, value in {**stack_environment(ports()), **login}.items():
        os.environ.setdefault(name, value)


def postgres_for(cleanup: ExitStack) -> None:
    """Point this process at the embedded PostgreSQL, starting it (until `cleanup`) when
    `make run` is not up."""
    use_embedded_stack()
    at = ports()
    if not _listening(at.postgres):
        pg = embedded_postgres(at)
        pg.start()
        cleanup.callback(pg.stop)
        pg.ensure_database(DATABASE)


def taken_ports(at: Ports) -> dict[str, int]:
    """The ports `make run` needs that something already listens on."""
    return {what: port for what, port in at.every().items() if not _free(port)}


def port_advice(at: Ports, taken: dict[str, int]) -> str:
    """What to tell someone whose ports are taken: which, and how to choose others."""
    free = next((o for o in SUGGESTED_OFFSETS if not taken_ports(Ports(at.offset + o))), None)
    offset = "<n>" if free is None else str(at.offset + free)
    return "\n".join(
        [
            "make run: nothing was started, because these ports are taken "
            "(by another Concord, or another program):",
            *(f"  {port}  {what}" for what, port in taken.items()),
            "Stop what holds them, or move every port of this Concord by an offset:",
            f"  {PORT_OFFSET}={offset} make run",
            f"(and the same {PORT_OFFSET} for `make migrate`, `make rebuild` and the other "
            'commands: README, "Ports")',
        ]
    )


def banner(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Names in a column of their own, whatever their length."""
    width = max(len(name) for name, _ in rows) + 2
    return [f"{name:<{width}}{what}" for name, what in rows]


def _stack_rows(at: Ports, pg: EmbeddedPostgres, nats: EmbeddedNats) -> list[tuple[str, str]]:
    database = pg.url(DATABASE, driver="postgresql", secret=False)
    return [
        ("PostgreSQL", f"{database}  (password in {pg.password_file}, data in {pg.data_dir})"),
        ("NATS", f"{nats.url}  (JetStream in {nats.data_dir})"),
        ("NATS monitor", f"http://127.0.0.1:{at.nats_monitor}"),
        *(
            (name, f"http://127.0.0.1:{port}  docs http://127.0.0.1:{port}/docs")
            for name, port in at.services().items()
        ),
    ]


def _start_service(factory: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "uvicorn", factory, "--factory"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--no-access-log", "--timeout-graceful-shutdown", "20"),
    ]
    # A session of its own: stopped by us, in order, not by the terminal's Ctrl-C.
    return subprocess.Popen(command, env=env, start_new_session=True)


def _stop(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()


def _on_ctrl_c() -> threading.Event:
    """Set by Ctrl-C or SIGTERM, so that whatever is starting finishes and is stopped in order."""
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    return stopping


def _supervise(
    children: Sequence[subprocess.Popen[bytes]],
    at: Ports,
    rows: list[tuple[str, str]],
    stopping: threading.Event,
) -> int:
    """Show the banner once every service listens; stop everything when one exits."""
    waiting = set(at.services().values())
    while not stopping.is_set():
        if any(child.poll() is not None for child in children):
            print("make run: a service exited; stopping everything", file=sys.stderr)
            return 1
        if waiting:
            waiting = {port for port in waiting if not _listening(port)}
            if not waiting:
                print("\n".join(["", *banner(rows), ""]), flush=True)
                print(
                    "A token: make token ORG=acme ROLES=alliance_manager   Ctrl-C stops everything."
                )
        time.sleep(0.2)
    return 0


def run_everything() -> int:
    """PostgreSQL, NATS and every declared service, once every port they need is free;
    stopped in order on Ctrl-C."""
    at = ports()
    taken = taken_ports(at)
    if taken:
        print(port_advice(at, taken), file=sys.stderr)
        return 2
    stopping = _on_ctrl_c()
    HOME.mkdir(parents=True, exist_ok=True)
    pg, nats = embedded_postgres(at), embedded_nats(at)
    env = {**os.environ, **stack_environment(at)}
    env.setdefault("CONCORD_LOG_FORMAT", "human")  # a person reads this terminal
    with ExitStack() as running:
        running.callback(print, "stopped")
        pg.start()
        running.callback(pg.stop)
        pg.ensure_database(DATABASE)
        nats.start()
        running.callback(nats.stop)
        children = [
            _start_service(
                declared.factory,
                at.services()[name],
                {**env, **nats_login(declared.settings.service)},
            )
            for name, declared in services().items()
        ]
        running.callback(_stop, children)
        return _supervise(children, at, _stack_rows(at, pg, nats), stopping)
    raise AssertionError("unreachable")


def _free(port: int) -> bool:
    # SO_REUSEADDR as the servers set it: a port left in TIME_WAIT is free, a listener is not.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
