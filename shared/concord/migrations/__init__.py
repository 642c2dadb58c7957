"""Schema migrations: Alembic, driven from code (no alembic.ini), one history per service
schema.

- **Two branches, one schema.** Every service schema holds the kernel's tables and the
  service's own. Its history has two bases: the kernel's revisions, the modules beside this
  one (`kernel_0001`, `kernel_0002`, ...), and the service's, in its `<package>/migrations/`
  (`scorecard_0001`, ...). Both are applied to the one schema, whose `alembic_version`
  table lives in that schema too and holds one head per branch. A kernel change is written
  once, here, and reaches every service schema on its next start.
- **Schema at run time.** Revisions are called as `upgrade(schema)`, so the same kernel
  revisions serve `scorecard`, `governance`, `trust_survey`, `notifications` (and the tests'
  `kerneltest`). A service revision still names its own schema's tables through `schema`.
- **Frozen snapshots.** A revision spells out its tables and never imports the live `Table`s
  (`concord.tables`, `<package>/tables.py`): they say what the schema is now, a revision
  what it became then. A test holds the head of the history to the `Table`s.
- **Kernel first.** The kernel's branch is brought to its head before the service's runs,
  so a service revision may rely on every kernel table (no `depends_on` needed, and the
  version table keeps exactly one row per branch).
- **Forward only.** There are no downgrades: going back is restoring a backup.

`migrate` runs in one transaction under the advisory lock `ddl:<schema>` (the same key the
start-up DDL took before migrations, so old and new replicas queue behind each other):
replicas starting together wait for the first, find the schema at head and do nothing, and a
failed revision leaves the schema as it was. `ServiceRuntime.install()` runs it at start-up,
`concord migrate` on demand.

**Adopting a schema made before migrations** (by start-up `CREATE TABLE IF NOT EXISTS`: it
has `events` but no `alembic_version`): it holds what revision 1 of each branch builds, so it
is stamped there and upgraded. Code from between the two also created some of revision 2's
tables; the revisions 2 create those only if missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from alembic import op
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from concord.db import checked_schema, lock_key
from concord.secrets import SETTING, SecretBox, SecretsUnavailable

log = logging.getLogger(__name__)
# Alembic announces its context on every start; `migrate` logs what it ran instead.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

KERNEL = Path(__file__).parent
HEAD = ("kernel@head", "heads")
# Where a revision that seals or opens secrets finds the service's keys (`secret_box`).
SECRETS = "concord_secrets"


class Step(NamedTuple):
    revision: str
    doc: str


@dataclass(frozen=True)
class Migrated:
    schema: str
    adopted: tuple[str, ...]  # stamped, not run: the schema predates migrations
    applied: tuple[Step, ...]  # run, in order
    heads: tuple[str, ...]  # where each branch stands now


def history(location: Path | str | None = None) -> ScriptDirectory:
    """The kernel's branch, and the service's when it has one (a directory of revisions)."""
    locations = [str(KERNEL), *([str(location)] if location is not None else [])]
    return ScriptDirectory(str(KERNEL), version_locations=locations)


async def migrate(
    engine: AsyncEngine,
    schema: str,
    location: Path | str | None = None,
    *,
    to: Sequence[str] = HEAD,
    secrets: SecretBox | None = None,
) -> Migrated:
    """Bring `schema` to each of `to` in turn (the kernel's head, then every branch's,
    unless told), adopting it first if it predates migrations. `location` is the service's
    own branch (None: the kernel's only); `secrets`, its keys, for revisions that seal."""
    s = checked_schema(schema)
    script = history(location)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"ddl:{s}")})
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {s}"))
        migrated = await conn.run_sync(_migrate, s, script, tuple(to), secrets)
    if migrated.adopted:
        log.info("adopted %s at %s", s, ", ".join(migrated.adopted))
    for step in migrated.applied:
        log.info("migrated %s: %s %s", s, step.revision, " ".join(step.doc.split()))
    return migrated


def secret_box() -> SecretBox:
    """For a revision that seals or opens secrets: the keys the service runs with."""
    box: SecretBox | None = op.get_context().opts.get(SECRETS)
    if box is None:
        raise SecretsUnavailable(f"this revision seals stored secrets: set {SETTING}")
    return box


def _migrate(
    conn: Connection,
    schema: str,
    script: ScriptDirectory,
    to: tuple[str, ...],
    secrets: SecretBox | None,
) -> Migrated:
    applied: list[Step] = []

    def record(*, step: MigrationInfo, **_: Any) -> None:
        revision = step.up_revision_id or ""
        found = script.get_revision(revision)
        applied.append(Step(revision, found.doc if found is not None else ""))

    def context(target: str | None = None) -> MigrationContext:
        opts: dict[str, Any] = {
            "version_table_schema": schema,
            "on_version_apply": [record],
            SECRETS: secrets,
        }
        if target is not None:
            opts["fn"] = partial(_upgrade, script, target)
        return MigrationContext.configure(conn, opts=opts)

    adopted: tuple[str, ...] = ()
    ctx = context()
    if not ctx.get_current_heads() and inspect(conn).has_table("events", schema=schema):
        adopted = _kernel_first(script.get_bases())
        for base in adopted:
            ctx.stamp(script, base)
    for target in to:
        ctx = context(target)
        with Operations.context(ctx):
            ctx.run_migrations(schema=schema)  # each revision's upgrade(schema=...)
    return Migrated(schema, adopted, tuple(applied), _kernel_first(ctx.get_current_heads()))


def _kernel_first(revisions: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(revisions, key=lambda r: (not r.startswith("kernel_"), r)))


def _upgrade(script: ScriptDirectory, target: str, heads: Any, _: MigrationContext) -> Any:
    # What `alembic upgrade <target>` runs, without an env.py.
    return script._upgrade_revs(target, heads)
