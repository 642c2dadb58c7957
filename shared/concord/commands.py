"""The one command path, whoever starts it (an HTTP request, a reaction to an event, a timer):

context -> transaction -> load the stream, or each stream of a view (the cached state plus
newer events) -> (idempotency claim) -> authorize -> decide -> append events (the outbox)
and their timers, stream by stream -> (remember the answer) -> commit -> wake the relay and
the scheduler.

Everything between load and commit is one PostgreSQL transaction, so a crash anywhere
leaves either all of it or none of it. A reaction's checkpoint and a timer's firing are
written in that same transaction by their runners, which is what makes them exactly-once in
effect. Nothing here knows HTTP: `concord.http` builds the context from a request and turns
an `Answer` into a response.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from concord.clock import SYSTEM_CLOCK, Clock
from concord.domain import Actor, CancelTimer, Decider, DomainEvent, ScheduleTimer, TimerChange
from concord.eventstore import SERIALIZATION_FAILURE, StreamConflict
from concord.observability import EVENTS_APPENDED
from concord.problems import PROBLEM_JSON, ProblemError, conflict, precondition_failed

if TYPE_CHECKING:
    from concord.events import CloudEvent
    from concord.runtime import ServiceRuntime

S = TypeVar("S")
V = TypeVar("V")
C = TypeVar("C")
T = TypeVar("T")
RETRIES = 3
DEADLOCK_DETECTED = "40P01"


@dataclass(frozen=True)
class Idempotent:
    """An Idempotency-Key as its caller (`scope`) sent it, bound to the request it came with."""

    scope: str
    key: str
    request_hash: str


@dataclass(frozen=True)
class CommandContext:
    """Who asks, and why: everything a command needs from whatever started it."""

    actor: Actor
    correlation_id: str
    # The id of the event, timer or request that caused this command.
    causation_id: str
    traceparent: str | None = None
    idempotency: Idempotent | None = None
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def of_event(cls, actor: Actor, cause: CloudEvent, clock: Clock) -> CommandContext:
        """A reaction's context: caused by the event, in the same correlation and trace."""
        return cls(
            actor=actor,
            correlation_id=cause.correlationid or str(cause.id),
            causation_id=str(cause.id),
            traceparent=cause.traceparent,
            clock=clock,
        )


@dataclass(frozen=True)
class Answer:
    """What a command answers, as it is remembered for an idempotent replay."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    # Body fields that hold a secret shown this once (a credential's): never stored, so an
    # idempotent replay cannot show them again and answers `shown_once_problem` instead.
    shown_once: tuple[str, ...] = ()

    def kept(self) -> Answer:
        """What may be stored for a replay: this answer, or the problem that stands for it."""
        return self if not self.shown_once else shown_once_problem(self)


def shown_once_problem(answer: Answer) -> Answer:
    """409 `shown-once`: the first answer showed a secret once; the rest of what it said is
    under `answer`, so the caller can find (and revoke) what was made."""
    secrets = ", ".join(answer.shown_once)
    body = {
        "type": "/problems/shown-once",
        "title": "Shown once",
        "status": 409,
        "detail": f"This request was already answered, with {secrets} shown that once and not "
        "kept: it cannot be shown again. `answer` is the rest of that answer; to get a new "
        f"{secrets}, make a new request (with a new Idempotency-Key).",
        "answer": {k: v for k, v in answer.body.items() if k not in answer.shown_once},
    }
    return Answer(409, body, {"Content-Type": PROBLEM_JSON})


def etag(version: int | Version) -> str:
    return f'"{version}"'


async def current(
    runtime: ServiceRuntime, conn: AsyncConnection, decider: Decider[S, Any], stream_id: str
) -> tuple[S, int]:
    """A stream's state and version: the cached state, plus whatever was appended since."""
    cached = runtime.aggregates.get(stream_id)
    version, state = cached if cached is not None else (0, None)
    history = await runtime.store.load(conn, stream_id, after=version)
    state = decider.fold([runtime.registry.decode(e) for e in history], state)
    return state, version + len(history)


class Transaction:
    """One attempt at a command: its connection and context, and the streams it writes."""

    def __init__(self, runtime: ServiceRuntime, conn: AsyncConnection, context: CommandContext):
        self.runtime = runtime
        self.conn = conn
        self.context = context
        self.writes: list[StreamWrite[Any]] = []

    async def stream(
        self, decider: Decider[S, Any], stream_id: str, alliance_id: str | None
    ) -> StreamWrite[S]:
        state, version = await current(self.runtime, self.conn, decider, stream_id)
        write = StreamWrite(self, decider, stream_id, alliance_id, state, version)
        self.writes.append(write)
        return write

    async def committed(self) -> None:
        """After the commit: the cache learns the new states, the workers are woken."""
        appended = 0
        for write in self.writes:
            self.runtime.aggregates.put(write.stream_id, write.version, write.state)
            appended += write.appended
        if appended:
            EVENTS_APPENDED.labels(self.runtime.service).inc(appended)
            await self.runtime.events_committed()
        if any(write.timers_changed for write in self.writes):
            await self.runtime.timers_changed()


@dataclass
class StreamWrite(Generic[S]):
    """One stream inside a transaction: the state it decides on, and `append` for what it
    decided (with the timers the decider sets for those events)."""

    tx: Transaction
    decider: Decider[S, Any]
    stream_id: str
    alliance_id: str | None
    state: S
    version: int
    appended: int = 0
    timers_changed: bool = False

    @property
    def conn(self) -> AsyncConnection:
        return self.tx.conn

    async def append(self, events: Sequence[DomainEvent], folded: S | None = None) -> S:
        """Append `events`; `folded` is the state after them, when the decision already has it."""
        if not events:
            return self.state
        runtime, context = self.tx.runtime, self.tx.context
        at = context.clock.now()
        envelopes = [
            runtime.registry.envelope(
                event,
                stream_id=self.stream_id,
                stream_version=self.version + offset,
                alliance_id=self.alliance_id,
                actor=context.actor,
                correlation_id=context.correlation_id,
                causation_id=context.causation_id,
                traceparent=context.traceparent,
                at=at,
            )
            for offset, event in enumerate(events, start=1)
        ]
        state = self.decider.fold(events, self.state) if folded is None else folded
        if self.decider.timers is not None:
            # Timers before events, the order a firing timer takes them in: two transactions
            # on one stream then wait for each other instead of deadlocking.
            await self.change_timers(self.decider.timers(state, events))
        self.version = await runtime.store.append(
            self.conn, self.stream_id, self.version, envelopes
        )
        self.state = state
        self.appended += len(envelopes)
        return self.state

    async def change_timers(self, changes: Sequence[TimerChange]) -> None:
        book, context = self.tx.runtime.timer_book, self.tx.context
        scheduled = [c for c in changes if isinstance(c, ScheduleTimer)]
        cancelled = [c.key for c in changes if isinstance(c, CancelTimer)]
        if scheduled:
            await book.schedule(self.conn, self.stream_id, self.alliance_id, scheduled, context)
        if cancelled:
            await book.cancel(self.conn, self.stream_id, cancelled)
        self.timers_changed = self.timers_changed or bool(scheduled or cancelled)


async def transaction(
    runtime: ServiceRuntime,
    context: CommandContext,
    work: Callable[[Transaction], Awaitable[T]],
) -> T:
    """Run `work` in one transaction and commit everything it wrote. On a concurrent append
    it runs again on fresh state (up to three times, then 409); after the commit the
    aggregate cache learns the new states and the relay and scheduler are woken."""
    for attempt in range(RETRIES):
        try:
            async with runtime.engine.begin() as conn:
                tx = Transaction(runtime, conn, context)
                result = await work(tx)
        except (StreamConflict, DBAPIError) as error:
            if isinstance(error, DBAPIError) and not _lost_a_race(error):
                raise
            if attempt == RETRIES - 1:
                raise conflict("It is being changed by someone else: retry") from None
            continue
        await tx.committed()
        return result
    raise AssertionError("unreachable")


def _lost_a_race(error: DBAPIError) -> bool:
    """PostgreSQL ended the transaction for another one (a deadlock between a command and a
    firing timer, say): nothing of it was written, so it can run again."""
    return getattr(error.orig, "sqlstate", None) in (DEADLOCK_DETECTED, SERIALIZATION_FAILURE)


async def decide_on(
    tx: Transaction,
    decider: Decider[S, C],
    stream_id: str,
    alliance_id: str | None,
    command: C,
) -> StreamWrite[S]:
    """Decide `command` on a stream within `tx` and append what it decided: what a reaction
    or a timer does, with no answer to give."""
    write = await tx.stream(decider, stream_id, alliance_id)
    await write.append(decider.decide(write.state, command))
    return write


async def execute(
    runtime: ServiceRuntime,
    context: CommandContext,
    decider: Decider[S, C],
    *,
    stream_id: str,
    alliance_id: str,
    command: C,
    authorize: Callable[[S], None],
    respond: Callable[[S, int], BaseModel],
    expected_version: Version | None = None,
    status_code: int = 200,
    location: str | None = None,
) -> Answer:
    """One command on one stream, answered (see the module docstring): a view of one."""
    return await execute_view(
        runtime,
        context,
        View.of_one(decider),
        stream_ids=(stream_id,),
        alliance_id=alliance_id,
        command=command,
        authorize=authorize,
        respond=lambda state, version: respond(state, version.part(0)),
        expected_version=expected_version,
        status_code=status_code,
        location=location,
    )


# --- views: a command decided on several streams at once --------------------------------

VERSION_PATTERN = r"[0-9]{1,9}(\.[0-9]{1,9})?"


@dataclass(frozen=True, init=False)
class Version:
    """How far a command's view had come: a stream's version, or one per stream of a view
    (a partner's view of a scorecard: the shared stream's, then its own private one's).
    Written `12` or `12.3`. A last stream still at 0 is left out, so a view whose second
    stream is empty reads, and compares, as its first stream alone."""

    parts: tuple[int, ...]

    def __init__(self, *parts: int) -> None:
        kept = list(parts) or [0]
        while len(kept) > 1 and kept[-1] == 0:
            kept.pop()
        object.__setattr__(self, "parts", tuple(kept))

    def __str__(self) -> str:
        return ".".join(str(part) for part in self.parts)

    def part(self, index: int) -> int:
        return self.parts[index] if index < len(self.parts) else 0

    def reached(self, wanted: Version) -> bool:
        """Every stream is at least where `wanted` says (read-your-writes)."""
        return all(self.part(i) >= part for i, part in enumerate(wanted.parts))

    @classmethod
    def parse(cls, text: str) -> Version | None:
        if re.fullmatch(VERSION_PATTERN, text) is None:
            return None
        return cls(*(int(part) for part in text.split(".")))


@dataclass(frozen=True)
class View(Generic[S, V, C]):
    """A command decided on several streams of one aggregate together: `see` puts their
    states together as the caller may see them (the shared scorecard and its own private
    one, never another organisation's), and `decide` gives the events for each stream, in
    the order of the streams. One stream is the simplest view (`View.of_one`)."""

    decider: Decider[S, Any]
    see: Callable[[Sequence[S]], V]
    decide: Callable[[V, C], Sequence[Sequence[DomainEvent]]]

    @staticmethod
    def of_one(decider: Decider[S, C]) -> View[S, S, C]:
        return View(decider, lambda states: states[0], lambda s, c: [decider.decide(s, c)])


async def execute_view(
    runtime: ServiceRuntime,
    context: CommandContext,
    view: View[S, V, C],
    *,
    stream_ids: Sequence[str],
    alliance_id: str,
    command: C,
    authorize: Callable[[V], None],
    respond: Callable[[V, Version], BaseModel],
    expected_version: Version | None = None,
    status_code: int = 200,
    location: str | None = None,
) -> Answer:
    """One command on the view of `stream_ids`, loaded and appended to in one transaction,
    answered with the view's version as its ETag (see the module docstring)."""
    idempotent = context.idempotency
    idempotency = _idempotency(runtime.schema)

    async def work(tx: Transaction) -> Answer:
        writes = [await tx.stream(view.decider, s, alliance_id) for s in stream_ids]
        if idempotent is not None:
            replay = await idempotency.claim(tx.conn, idempotent)
            if replay is not None:
                return replay
        seen = view.see([write.state for write in writes])
        authorize(seen)
        version = Version(*(write.version for write in writes))
        if expected_version is not None and expected_version != version:
            # On a retry after a concurrent append, a stale If-Match fails here.
            raise precondition_failed(
                f"It is at version {version}, not {expected_version}: read it again"
            )
        for write, events in zip(writes, view.decide(seen, command), strict=True):
            await write.append(events)
        version = Version(*(write.version for write in writes))
        seen = view.see([write.state for write in writes])
        headers = {"ETag": etag(version)}
        if location is not None:
            headers["Location"] = location
        answer = Answer(status_code, respond(seen, version).model_dump(mode="json"), headers)
        if idempotent is not None:
            await idempotency.remember(tx.conn, idempotent, answer)
        return answer

    return await transaction(runtime, context, work)


async def remembered(
    runtime: ServiceRuntime,
    context: CommandContext,
    *,
    act: Callable[[AsyncConnection], Awaitable[BaseModel]],
    status_code: int = 200,
    shown_once: tuple[str, ...] = (),
) -> Answer:
    """A write that is not an event (an integration credential, say) with the same
    Idempotency-Key promise as a command: `act` and the remembered answer commit together.
    `shown_once` names the answer's fields that are secrets, never stored (see `Answer`)."""
    idempotent = context.idempotency
    idempotency = _idempotency(runtime.schema)
    async with runtime.engine.begin() as conn:
        if idempotent is not None:
            replay = await idempotency.claim(conn, idempotent)
            if replay is not None:
                return replay
        body = (await act(conn)).model_dump(mode="json")
        answer = Answer(status_code, body, shown_once=shown_once)
        if idempotent is not None:
            await idempotency.remember(conn, idempotent, answer)
    return answer


@cache
def _idempotency(schema: str) -> Idempotency:
    return Idempotency(schema)


class Idempotency:
    """Idempotency keys, kept in the command's own transaction: the key, the events and the
    answer commit together. A second request with the same key waits on the first one's
    row lock, then replays its answer."""

    def __init__(self, schema: str) -> None:
        self._claim = text(
            f"""INSERT INTO {schema}.idempotency_keys (caller, key, request_hash)
                VALUES (:caller, :key, :hash) ON CONFLICT DO NOTHING"""
        )
        self._stored = text(
            f"""SELECT request_hash, status_code, body, headers FROM {schema}.idempotency_keys
                WHERE caller = :caller AND key = :key"""
        ).columns(body=JSONB, headers=JSONB)
        self._remember = text(
            f"""UPDATE {schema}.idempotency_keys
                SET status_code = :status, body = :body, headers = :headers
                WHERE caller = :caller AND key = :key"""
        ).bindparams(bindparam("body", type_=JSONB), bindparam("headers", type_=JSONB))

    async def claim(self, conn: AsyncConnection, idempotent: Idempotent) -> Answer | None:
        """None if this request owns the key now; otherwise the answer to replay."""
        params = {
            "caller": idempotent.scope,
            "key": idempotent.key,
            "hash": idempotent.request_hash,
        }
        if (await conn.execute(self._claim, params)).rowcount == 1:
            return None
        row = (await conn.execute(self._stored, params)).one()
        if row.request_hash != idempotent.request_hash:
            raise ProblemError(
                422,
                "idempotency-key-reused",
                "Idempotency key reused",
                "This Idempotency-Key was already used with a different request",
            )
        headers: dict[str, str] = dict(row.headers or {})
        headers["Idempotent-Replayed"] = "true"
        return Answer(row.status_code, row.body, headers)

    async def remember(self, conn: AsyncConnection, idempotent: Idempotent, answer: Answer) -> None:
        answer = answer.kept()  # a secret shown once is never written
        await conn.execute(
            self._remember,
            {
                "caller": idempotent.scope,
                "key": idempotent.key,
                "status": answer.status_code,
                "body": answer.body,
                "headers": answer.headers,
            },
        )
