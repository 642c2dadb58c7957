"""What a projection takes in from its source's stream, and what it sets aside.

Only the source service's relay may publish on its subjects (NATS permissions, `concord.bus`),
and the relay publishes every event, in version order within its stream. So each message a
projection applies must be
- readable: a CloudEvent;
- its source's: `source` is `/concord/<service>`, the type one of that service's, published
  on its own type (the relay's subject);
- next in its stream: `streamversion` one above the last version of that stream applied.

A version already applied is a redelivery or a republish (past JetStream's duplicate window):
skipped, changing nothing. A version further ahead is held, parked as `ahead`, and applied
as soon as the versions before it have been: the relay's pipelined publishes can store k+1
before k when k's publish fails (ADR 0002), so valid traffic is never left waiting. A forged
`streamversion: 999` waits for ever, listed for an operator, and its stream flows on.

A message that is not readable, not its source's, or whose data this code cannot read, was
never published in order by a relay: parked with its error (an ERROR log line and a metric),
while the checkpoint moves past it. An invalid event holds back its own stream only (its
successors wait as `ahead`): an operator replays it once the code reads it, or drops it to let
the stream move on. A dropped message stays recorded, so a rebuild skips it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from concord.db import checked_schema
from concord.events import CloudEvent
from concord.observability import PROJECTION_PARKED

if TYPE_CHECKING:
    from concord.projections import Projection, ReadModel

log = logging.getLogger(__name__)


class Reason(StrEnum):
    unreadable = "unreadable"  # not JSON, or not a CloudEvent
    foreign = "foreign"  # not its source's event, or not on its own subject
    invalid = "invalid"  # a type this code knows, with data it cannot read
    ahead = "ahead"  # after a version not yet applied: held until it is


Outcome = Reason | Literal["applied", "seen", "dropped"]


@dataclass(frozen=True)
class Arrival:
    """One message as JetStream delivered it (or as a parked row kept it)."""

    sequence: int
    subject: str
    data: bytes
    dropped: bool = False  # never applied; only lets its stream move on when it is next
    parked: bool = False  # comes from a parked row, which goes once it is applied


@dataclass(frozen=True)
class SetAside:
    reason: Reason
    error: str


@dataclass
class Taken:
    """What one batch did: the events applied, and what became of each message."""

    applied: list[CloudEvent] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)
    held: dict[str, dict[int, Arrival]] = field(default_factory=dict)
    unparked: bool = False

    @property
    def parked_changed(self) -> bool:
        return self.unparked or any(o not in ("applied", "seen") for o in self.outcomes.values())


def read(arrival: Arrival, source: str) -> CloudEvent | SetAside:
    """The envelope, if the message is one of `source`'s events on its own subject."""
    try:
        event = CloudEvent.from_json(arrival.data)
    except ValueError as error:
        return SetAside(Reason.unreadable, _short(error))
    try:
        service = event.service
    except ValueError as error:
        return SetAside(Reason.foreign, str(error))
    if event.source != f"/concord/{source}" or service != source:
        return SetAside(Reason.foreign, f"{event.type} from {event.source} is not {source}'s")
    if arrival.subject != event.type:
        return SetAside(Reason.foreign, f"{event.type} was published on {arrival.subject}")
    if _has_nul(event.model_dump()):
        # An event store's envelope is JSONB, which cannot hold one: no relay sent this.
        return SetAside(Reason.unreadable, "a NUL character in the event")
    return event


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Intake:
    """One projection's intake, inside the transaction that applies a batch and moves its
    checkpoint: versions per stream and parked messages commit with the read model."""

    def __init__(self, schema: str, projection: Projection, *, service: str) -> None:
        s = checked_schema(schema)
        self.projection = projection
        self.service = service
        self._versions = text(
            f"""SELECT stream_id, version FROM {s}.projection_streams
                WHERE projection = :p AND stream_id = ANY(:streams)"""
        )
        self._held = text(
            f"""SELECT sequence, subject, message FROM {s}.projection_parked
                WHERE projection = :p AND reason = 'ahead' AND dropped_at IS NULL
                  AND stream_id = ANY(:streams)"""
        )
        self._dropped = text(
            f"""SELECT sequence FROM {s}.projection_parked WHERE projection = :p
                AND dropped_at IS NOT NULL AND sequence BETWEEN :first AND :last"""
        )
        self._move = text(
            f"""INSERT INTO {s}.projection_streams (projection, stream_id, version)
                VALUES (:p, :stream, :version) ON CONFLICT (projection, stream_id)
                DO UPDATE SET version = excluded.version"""
        )
        self._park = text(
            f"""INSERT INTO {s}.projection_parked (projection, sequence, subject, message,
                    reason, error, event_id, event_type, stream_id, stream_version)
                VALUES (:p, :sequence, :subject, :message, :reason, :error, :event_id,
                    :event_type, :stream_id, :stream_version)
                ON CONFLICT (projection, sequence) DO UPDATE
                SET reason = excluded.reason, error = excluded.error"""
        )
        self._unpark = text(
            f"DELETE FROM {s}.projection_parked WHERE projection = :p AND sequence = :sequence"
        )
        self._claim = text(
            f"""SELECT sequence, subject, message FROM {s}.projection_parked
                WHERE projection = :p AND sequence = :sequence AND dropped_at IS NULL
                FOR UPDATE"""
        )
        self._drop = text(
            f"""UPDATE {s}.projection_parked SET dropped_at = now()
                WHERE projection = :p AND sequence = :sequence"""
        )
        self._forget = (
            text(f"DELETE FROM {s}.projection_streams WHERE projection = :p"),
            text(f"DELETE FROM {s}.projection_parked WHERE projection = :p AND dropped_at IS NULL"),
        )

    @property
    def name(self) -> str:
        return self.projection.name

    async def take(self, model: ReadModel, arrivals: Sequence[Arrival]) -> Taken:
        """Apply what is next in its stream, skip what was seen, park the rest."""
        source = self.projection.source
        envelopes = [(a, read(a, source)) for a in arrivals]
        taken = await self._state(model.conn, arrivals, envelopes)
        for arrival, envelope in envelopes:
            if isinstance(envelope, SetAside):
                self._set_aside(model, taken, arrival, None, envelope)
            else:
                await self._in_order(model, taken, arrival, envelope)
        for stream in sorted(taken.moved):
            model.write(
                self._move, {"p": self.name, "stream": stream, "version": taken.versions[stream]}
            )
        return taken

    async def _state(
        self,
        conn: AsyncConnection,
        arrivals: Sequence[Arrival],
        envelopes: list[tuple[Arrival, CloudEvent | SetAside]],
    ) -> Taken:
        """How far each stream of the batch got, and what is held for them."""
        taken = Taken()
        if not arrivals:
            return taken
        streams = sorted({e.subject for _, e in envelopes if isinstance(e, CloudEvent)})
        params = {"p": self.name, "streams": streams}
        for row in await conn.execute(self._versions, params) if streams else ():
            taken.versions[row.stream_id] = row.version
        for row in await conn.execute(self._held, params) if streams else ():
            held = Arrival(row.sequence, row.subject, bytes(row.message), parked=True)
            envelope = read(held, self.projection.source)
            if isinstance(envelope, CloudEvent):
                taken.held.setdefault(envelope.subject, {})[envelope.streamversion] = held
        sequences = [a.sequence for a in arrivals]
        dropped = await conn.execute(
            self._dropped, {"p": self.name, "first": min(sequences), "last": max(sequences)}
        )
        dropped_now = set(dropped.scalars())
        for i, (arrival, envelope) in enumerate(envelopes):
            if arrival.sequence in dropped_now:
                envelopes[i] = (replace(arrival, dropped=True), envelope)
        return taken

    async def _in_order(
        self, model: ReadModel, taken: Taken, arrival: Arrival, event: CloudEvent
    ) -> None:
        """Take `event` if it is next in its stream, then whatever was held behind it."""
        next_up: tuple[Arrival, CloudEvent] | None = (arrival, event)
        while next_up is not None:
            arrival, event = next_up
            next_up = None
            stream, version = event.subject, event.streamversion
            last = taken.versions.get(stream, 0)
            if version <= last:
                self._done(model, taken, arrival, "dropped" if arrival.dropped else "seen")
            elif version > last + 1:
                error = (
                    f"version {version} of {stream} came after {last}: held for the ones between"
                )
                self._set_aside(model, taken, arrival, event, SetAside(Reason.ahead, error))
            elif await self._apply(model, taken, arrival, event):
                taken.versions[stream] = version
                taken.moved.add(stream)
                held = taken.held.get(stream, {}).pop(version + 1, None)
                if held is not None:
                    envelope = read(held, self.projection.source)
                    assert isinstance(envelope, CloudEvent)  # read so when it was held
                    next_up = (held, envelope)

    async def _apply(
        self, model: ReadModel, taken: Taken, arrival: Arrival, event: CloudEvent
    ) -> bool:
        """Apply the next event of its stream; False if set aside. A failing `apply` is a bug
        and raises: the batch rolls back and the projection stops there, loudly."""
        if arrival.dropped:
            self._done(model, taken, arrival, "dropped")
            return True
        events = self.projection.events
        if not events.knows(event):
            await self.projection.apply_other(model, event)
        else:
            try:
                recorded = events.recorded(event)
            except Exception as error:  # a missing upcaster, data it cannot validate
                self._set_aside(
                    model, taken, arrival, event, SetAside(Reason.invalid, _short(error))
                )
                return False
            await self.projection.apply(model, recorded)
        taken.applied.append(event)
        self._done(model, taken, arrival, "applied")
        return True

    def _done(self, model: ReadModel, taken: Taken, arrival: Arrival, outcome: Outcome) -> None:
        taken.outcomes[arrival.sequence] = outcome
        if arrival.parked and outcome != "dropped":
            model.write(self._unpark, {"p": self.name, "sequence": arrival.sequence})
            taken.unparked = True

    def _set_aside(
        self,
        model: ReadModel,
        taken: Taken,
        arrival: Arrival,
        event: CloudEvent | None,
        why: SetAside,
    ) -> None:
        if arrival.dropped:
            taken.outcomes[arrival.sequence] = "dropped"
            return
        taken.outcomes[arrival.sequence] = why.reason
        taken.errors[arrival.sequence] = why.error
        if event is not None and why.reason is Reason.ahead:
            taken.held.setdefault(event.subject, {})[event.streamversion] = replace(
                arrival, parked=True
            )
        model.write(
            self._park,
            {
                "p": self.name,
                "sequence": arrival.sequence,
                "subject": arrival.subject,
                "message": arrival.data,
                "reason": why.reason.value,
                "error": why.error,
                "event_id": str(event.id) if event else None,
                "event_type": event.type if event else None,
                "stream_id": event.subject if event else None,
                "stream_version": event.streamversion if event else None,
            },
        )
        if arrival.parked and why.reason is Reason.ahead:
            return  # held again: logged when it was first held
        if not arrival.parked:
            PROJECTION_PARKED.labels(self.service, self.name, why.reason.value).inc()
        level = logging.WARNING if why.reason is Reason.ahead else logging.ERROR
        log.log(
            level,
            "projection %s parked message %s on %s (%s): %s",
            self.name,
            arrival.sequence,
            arrival.subject,
            why.reason.value,
            why.error,
        )

    async def settle(
        self, model: ReadModel, sequence: int, *, drop: bool
    ) -> tuple[Outcome, str | None] | None:
        """An operator's replay (or drop) of a parked message; None if none is parked there.
        The caller holds the projection's checkpoint row, so no batch runs meanwhile."""
        params = {"p": self.name, "sequence": sequence}
        row = (await model.read(self._claim, params)).first()
        if row is None:
            return None
        if drop:
            model.write(self._drop, params)
            await model.flush()
        arrival = Arrival(sequence, row.subject, bytes(row.message), dropped=drop, parked=True)
        taken = await self.take(model, [arrival])
        return taken.outcomes[sequence], taken.errors.get(sequence)

    async def forget(self, conn: AsyncConnection) -> None:
        """Before a rebuild replays the stream: versions from nothing, parked from scratch
        (a dropped message stays dropped)."""
        for statement in self._forget:
            await conn.execute(statement, {"p": self.name})


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:2000].replace("\x00", "\ufffd")


class ParkedMessages:
    """A schema's parked projection messages, and its projections stopped by a failing
    `apply`: what `/ops/parked` lists and `concord_parked_work{kind="projection"}` counts."""

    def __init__(self, schema: str) -> None:
        s = checked_schema(schema)
        self.listed = text(
            f"""SELECT projection, sequence, subject, reason, error, event_id, event_type,
                    stream_id, stream_version, parked_at
                FROM {s}.projection_parked WHERE dropped_at IS NULL
                ORDER BY projection, sequence"""
        )
        self.count = text(f"SELECT count(*) FROM {s}.projection_parked WHERE dropped_at IS NULL")
        self.stopped = text(
            f"""SELECT projection, last_sequence, stopped_sequence AS sequence,
                    stopped_error AS error, stopped_since AS since
                FROM {s}.projection_checkpoints WHERE stopped_sequence IS NOT NULL
                ORDER BY projection"""
        )
