"""The append-only event store in each service's schema.

Writers append with an expected stream version (optimistic concurrency, no global lock).
Readers by global order use `read_committed`, which never skips an event whose transaction
commits late: positions come from a sequence at insert time, not at commit, so "everything
below the highest position I can see" is not a safe watermark. Instead each row records its
transaction id, and a reader only takes rows whose transaction is older than the oldest one
still running (`pg_snapshot_xmin`): all of those have finished, so nothing can appear below
the reader's checkpoint later. Rows are read in (transaction_id, position) order.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from concord.db import checked_schema
from concord.events import CloudEvent

SERIALIZATION_FAILURE = "40001"  # raised by the events_in_stream_order trigger


class StreamConflict(Exception):
    """Someone else appended to the stream since the writer read it."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} moved past version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True, order=True)
class Checkpoint:
    """A place in commit-safe order: every event at or before it has been handled."""

    transaction_id: int = 0
    position: int = 0


@dataclass(frozen=True)
class RecordedEvent:
    checkpoint: Checkpoint
    event: CloudEvent


@dataclass(frozen=True)
class OpenTransaction:
    """The transaction the commit-safe watermark waits for: the oldest one still open in the
    cluster, in any database. pg_locks names it to any role; what it is doing (state, age) is
    shown for another role's session only with pg_read_all_stats, else those are None."""

    xid: str
    pid: int | None
    application: str | None
    user: str | None
    state: str | None
    seconds: float | None
    prepared_as: str | None  # the gid, for a prepared (two-phase) transaction

    def __str__(self) -> str:
        if self.prepared_as is not None:
            who = [f"prepared as {self.prepared_as!r}"]
        else:
            who = [f"pid {self.pid}", f"application {self.application or '?'}"]
            who += [f"user {self.user or '?'}", self.state or "state not visible to this role"]
        if self.seconds is not None:
            who.append(f"open {self.seconds:.0f} s")
        return f"transaction {self.xid} ({', '.join(who)})"


_OLDEST_OPEN = text(
    """WITH watermark AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
       SELECT w.xmin::text AS xid, l.pid, a.application_name, a.usename, a.state, p.gid,
              extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, p.prepared))::float8
                AS seconds
       FROM watermark w
       JOIN pg_locks l ON l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock'
            AND l.granted AND l.transactionid = w.xmin::xid
       LEFT JOIN pg_stat_activity a ON a.pid = l.pid
       LEFT JOIN pg_prepared_xacts p ON p.transaction = l.transactionid
       LIMIT 1"""
)


async def oldest_open_transaction(conn: AsyncConnection) -> OpenTransaction | None:
    """Who holds the watermark back now (None: nobody, it has just ended). Reads pg_locks,
    which briefly locks the whole lock table: for the occasional look, not for every poll."""
    row = (await conn.execute(_OLDEST_OPEN)).first()
    await conn.commit()
    if row is None:
        return None
    return OpenTransaction(
        row.xid, row.pid, row.application_name, row.usename, row.state, row.seconds, row.gid
    )


class EventStore:
    def __init__(self, schema: str) -> None:
        s = checked_schema(schema)
        self.schema = s
        self._insert = text(
            f"""INSERT INTO {s}.events
                (event_id, stream_id, stream_version, event_type, alliance_id, occurred_at,
                 envelope)
                VALUES (:event_id, :stream_id, :stream_version, :event_type, :alliance_id,
                        :occurred_at, CAST(:envelope AS jsonb))"""
        )
        self._load = text(
            f"""SELECT envelope FROM {s}.events
                WHERE stream_id = :stream_id AND stream_version > :after ORDER BY stream_version"""
        ).columns(envelope=JSONB)
        self._version = text(
            f"SELECT coalesce(max(stream_version), 0) FROM {s}.events WHERE stream_id = :stream_id"
        )
        self._committed = text(
            f"""SELECT transaction_id, position, envelope FROM {s}.events
                WHERE (transaction_id, position) > (:transaction_id, :position)
                  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                ORDER BY transaction_id, position
                LIMIT :limit"""
        ).columns(envelope=JSONB)

    async def append(
        self,
        conn: AsyncConnection,
        stream_id: str,
        expected_version: int,
        events: list[CloudEvent],
    ) -> int:
        """Append in the caller's transaction (a conflict aborts it); returns the new version."""
        rows = []
        for offset, event in enumerate(events, start=1):
            if event.subject != stream_id or event.streamversion != expected_version + offset:
                raise ValueError(
                    "event envelope does not match the stream position it is appended at"
                )
            rows.append(
                {
                    "event_id": event.id,
                    "stream_id": stream_id,
                    "stream_version": event.streamversion,
                    "event_type": event.type,
                    "alliance_id": event.allianceid,
                    "occurred_at": event.time,
                    # Serialised once, by pydantic's fast path, and sent as text.
                    "envelope": event.model_dump_json(),
                }
            )
        if not rows:
            return expected_version
        try:
            await conn.execute(self._insert, rows)
        except IntegrityError as error:
            if "events_stream_version" in str(error.orig):
                raise StreamConflict(stream_id, expected_version) from error
            raise
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) == SERIALIZATION_FAILURE:
                raise StreamConflict(stream_id, expected_version) from error
            raise
        return expected_version + len(rows)

    async def load(self, conn: AsyncConnection, stream_id: str, after: int = 0) -> list[CloudEvent]:
        """The stream's events after version `after` (all of them by default), in order."""
        result = await conn.execute(self._load, {"stream_id": stream_id, "after": after})
        return [CloudEvent.model_validate(row.envelope) for row in result]

    async def version(self, conn: AsyncConnection, stream_id: str) -> int:
        return int((await conn.execute(self._version, {"stream_id": stream_id})).scalar_one())

    async def read_committed(
        self, conn: AsyncConnection, after: Checkpoint, limit: int = 500
    ) -> list[RecordedEvent]:
        """Events after `after` in commit-safe order; see the module docstring for why."""
        result = await conn.execute(
            self._committed,
            {"transaction_id": after.transaction_id, "position": after.position, "limit": limit},
        )
        return [
            RecordedEvent(
                Checkpoint(row.transaction_id, row.position),
                CloudEvent.model_validate(row.envelope),
            )
            for row in result
        ]
