"""Running one command end to end, the one way every service does it:

HTTP request -> load the stream (the cached state plus newer events) -> (idempotency claim)
-> authorize -> decide -> append events (the outbox) -> store the idempotent response ->
commit -> answer with the new ETag.

Everything between load and commit is one PostgreSQL transaction, so a crash anywhere
leaves either all of it or none of it. `in_stream` is the same transaction for commands
that are not one request's one decision (a batch of CRM events, say).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import JSONResponse

from concord.domain import Actor, Decider, DomainEvent
from concord.eventstore import StreamConflict
from concord.http import IDEMPOTENCY_KEY_PATTERN, etag, if_match_version
from concord.observability import EVENTS_APPENDED, request_id_var
from concord.problems import ProblemError, bad_request, conflict, precondition_failed
from concord.runtime import ServiceRuntime

S = TypeVar("S")
C = TypeVar("C")
T = TypeVar("T")
RETRIES = 3


async def current(
    runtime: ServiceRuntime, conn: AsyncConnection, decider: Decider[S, Any], stream_id: str
) -> tuple[S, int]:
    """A stream's state and version: the cached state, plus whatever was appended since."""
    cached = runtime.aggregates.get(stream_id)
    version, state = cached if cached is not None else (0, None)
    history = await runtime.store.load(conn, stream_id, after=version)
    state = decider.fold([runtime.registry.decode(e) for e in history], state)
    return state, version + len(history)


@dataclass
class StreamWrite(Generic[S]):
    """One attempt at changing a stream, inside its transaction: the state it decides on,
    and `append` for what it decided."""

    runtime: ServiceRuntime
    request: Request
    decider: Decider[S, Any]
    conn: AsyncConnection
    stream_id: str
    alliance_id: str
    state: S
    version: int
    appended: int = 0

    async def append(self, events: Sequence[DomainEvent], folded: S | None = None) -> S:
        """Append `events`; `folded` is the state after them, when the decision already has it."""
        envelopes = [
            self.runtime.registry.envelope(
                event,
                stream_id=self.stream_id,
                stream_version=self.version + offset,
                alliance_id=self.alliance_id,
                correlation_id=request_id_var.get(),
                traceparent=self.request.headers.get("traceparent"),
            )
            for offset, event in enumerate(events, start=1)
        ]
        self.version = await self.runtime.store.append(
            self.conn, self.stream_id, self.version, envelopes
        )
        self.state = self.decider.fold(events, self.state) if folded is None else folded
        self.appended += len(envelopes)
        return self.state


async def in_stream(
    runtime: ServiceRuntime,
    request: Request,
    decider: Decider[S, Any],
    *,
    stream_id: str,
    alliance_id: str,
    handle: Callable[[StreamWrite[S]], Awaitable[T]],
) -> T:
    """Run `handle` in one transaction on the stream's current state and commit what it
    appends, with anything else it wrote. On a concurrent append it runs again on fresh
    state (up to three times, then 409); after the commit the relay is woken."""
    for attempt in range(RETRIES):
        try:
            async with runtime.engine.begin() as conn:
                state, version = await current(runtime, conn, decider, stream_id)
                write = StreamWrite(
                    runtime, request, decider, conn, stream_id, alliance_id, state, version
                )
                result = await handle(write)
        except StreamConflict:
            if attempt == RETRIES - 1:
                raise conflict("It is being changed by someone else: retry") from None
            continue
        runtime.aggregates.put(stream_id, write.version, write.state)
        if write.appended:
            EVENTS_APPENDED.labels(runtime.service).inc(write.appended)
            await runtime.events_committed()
        return result
    raise AssertionError("unreachable")


async def execute(
    runtime: ServiceRuntime,
    request: Request,
    caller: Actor,
    decider: Decider[S, C],
    *,
    stream_id: str,
    alliance_id: str,
    command: C,
    authorize: Callable[[S], None],
    respond: Callable[[S, int], BaseModel],
    status_code: int = 200,
    location: str | None = None,
) -> JSONResponse:
    """One command on one stream, as an HTTP answer (see the module docstring)."""
    key = _idempotency_key(request)
    request_hash = await _request_hash(request)
    scope = f"{caller.org}/{caller.sub}"
    expected = if_match_version(request)
    idempotency = _idempotency(runtime.schema)

    async def handle(write: StreamWrite[S]) -> JSONResponse:
        if key is not None:
            replay = await idempotency.claim(write.conn, scope, key, request_hash)
            if replay is not None:
                return replay
        authorize(write.state)
        if expected is not None and expected != write.version:
            # On a retry after a concurrent append, a stale If-Match fails here.
            raise precondition_failed(
                f"It is at version {write.version}, not {expected}: read it again"
            )
        state = await write.append(decider.decide(write.state, command))
        body = respond(state, write.version).model_dump(mode="json")
        headers = {"ETag": etag(write.version)}
        if location is not None:
            headers["Location"] = location
        if key is not None:
            await idempotency.remember(write.conn, scope, key, status_code, body, headers)
        return JSONResponse(body, status_code=status_code, headers=headers)

    return await in_stream(
        runtime, request, decider, stream_id=stream_id, alliance_id=alliance_id, handle=handle
    )


async def remembered(
    runtime: ServiceRuntime,
    request: Request,
    caller: Actor,
    *,
    act: Callable[[AsyncConnection], Awaitable[BaseModel]],
    status_code: int = 200,
) -> JSONResponse:
    """A write that is not an event (an integration credential, say) with the same
    Idempotency-Key promise as a command: `act` and the remembered answer commit together."""
    key = _idempotency_key(request)
    request_hash = await _request_hash(request)
    scope = f"{caller.org}/{caller.sub}"
    idempotency = _idempotency(runtime.schema)
    async with runtime.engine.begin() as conn:
        if key is not None:
            replay = await idempotency.claim(conn, scope, key, request_hash)
            if replay is not None:
                return replay
        body = (await act(conn)).model_dump(mode="json")
        if key is not None:
            await idempotency.remember(conn, scope, key, status_code, body, {})
    return JSONResponse(body, status_code=status_code)


async def _request_hash(request: Request) -> str:
    """What an Idempotency-Key is bound to: a replay must be the same request."""
    body = await request.body()
    target = request.method.encode() + b" " + request.url.path.encode() + b"\n"
    return hashlib.sha256(target + body).hexdigest()


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


@cache
def _idempotency(schema: str) -> Idempotency:
    return Idempotency(schema)


class Idempotency:
    """Idempotency keys, kept in the command's own transaction: the key, the events and the
    response commit together. A second request with the same key waits on the first one's
    row lock, then replays its response."""

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

    async def claim(
        self, conn: AsyncConnection, caller: str, key: str, request_hash: str
    ) -> JSONResponse | None:
        """None if this request owns the key now; otherwise the response to replay."""
        params = {"caller": caller, "key": key, "hash": request_hash}
        if (await conn.execute(self._claim, params)).rowcount == 1:
            return None
        row = (await conn.execute(self._stored, params)).one()
        if row.request_hash != request_hash:
            raise ProblemError(
                422,
                "idempotency-key-reused",
                "Idempotency key reused",
                "This Idempotency-Key was already used with a different request",
            )
        headers: dict[str, Any] = dict(row.headers or {})
        headers["Idempotent-Replayed"] = "true"
        return JSONResponse(row.body, status_code=row.status_code, headers=headers)

    async def remember(
        self,
        conn: AsyncConnection,
        caller: str,
        key: str,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        await conn.execute(
            self._remember,
            {"caller": caller, "key": key, "status": status, "body": body, "headers": headers},
        )
