"""The benchmark's own PostgreSQL and NATS: embedded, in a temp dir, on free loopback ports."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats

from concord.devstack import PG_BIN, EmbeddedNats, EmbeddedPostgres, free_port, nats_server_binary

JWT_SECRET = "bench-secret-with-enough-length-for-hs256-signing"
# Seals the CRM credentials' secrets the CRM benchmark issues (a Fernet key).
SECRETS_KEYS = "bxUBmzRTAgD4Hj3QOs0sxb7mC6E4dEVvDhkEq1YhXWI="


@dataclass
class Stack:
    root: Path
    postgres: EmbeddedPostgres
    nats: EmbeddedNats

    def url(self, database: str) -> str:
        """SQLAlchemy URL (what the kernel takes)."""
        return self.postgres.url(database)

    def dsn(self, database: str) -> str:
        """Plain asyncpg DSN (what the raw baselines take)."""
        return self.postgres.url(database, driver="postgresql")

    async def create_database(self, name: str) -> None:
        admin = await asyncpg.connect(self.dsn("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    async def empty_jetstream(self) -> None:
        """Delete every stream, so a benchmark starts from an empty bus."""
        nc = await nats.connect(self.nats.url)
        try:
            js = nc.jetstream()
            for stream in await js.streams_info():
                await js.delete_stream(stream.config.name)
        finally:
            await nc.close()


def versions() -> dict[str, str]:
    def first_line(*cmd: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return out.strip().splitlines()[0] if out.strip() else "unknown"

    return {
        "postgres": first_line(str(PG_BIN / "postgres"), "--version"),
        "nats": first_line(str(nats_server_binary()), "--version"),
    }


@contextmanager
def embedded_stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="concord-bench-") as tmp:
        root = Path(tmp)
        postgres = EmbeddedPostgres(root / "postgres", free_port())
        nats_server = EmbeddedNats(root / "nats", free_port())
        postgres.start()
        try:
            nats_server.start()
            try:
                yield Stack(root, postgres, nats_server)
            finally:
                nats_server.stop()
        finally:
            postgres.stop()
