"""Running one command end to end, the one way every service does it:

HTTP request -> (idempotency claim) -> load stream -> authorize -> decide -> append events
(the outbox) -> store the idempotent response -> commit -> answer with the new ETag.

Everything between claim and commit is one PostgreSQL transaction, so a crash anywhere
leaves either all of it or none of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import JSONResponse

from concord.domain import Actor, Decider
from concord.eventstore import StreamConflict
from concord.http import IDEMPOTENCY_KEY_PATTERN, etag, if_match_version
from concord.observability import EVENTS_APPENDED, request_id_var
from concord.problems import ProblemError, bad_request, conflict, precondition_failed
from concord.runtime import ServiceRuntime

S = TypeVar("S")
C = TypeVar("C")
RETRIES = 3


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
    key = _idempotency_key(request)
    raw_body = await request.body()
    request_hash = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + raw_body
    ).hexdigest()
    scope = f"{caller.org}/{caller.sub}"
    expected = if_match_version(request)
    idempotency = _idempotency(runtime.schema)

    for attempt in range(RETRIES):
        try:
            async with runtime.engine.begin() as conn:
                if key is not None:
                    replay = await idempotency.claim(conn, scope, key, request_hash)
                    if replay is not None:
                        return replay
                history = await runtime.store.load(conn, stream_id)
                state = decider.fold([runtime.registry.decode(e) for e in history])
                version = len(history)
                authorize(state)
                if expected is not None and expected != version:
                    raise precondition_failed(
                        f"It is at version {version}, not {expected}: read it again"
                    )
                decided = decider.decide(state, command)
                envelopes = [
                    runtime.registry.envelope(
                        event,
                        stream_id=stream_id,
                        stream_version=version + offset,
                        alliance_id=alliance_id,
                        correlation_id=request_id_var.get(),
                        traceparent=request.headers.get("traceparent"),
                    )
                    for offset, event in enumerate(decided, start=1)
                ]
                version = await runtime.store.append(conn, stream_id, version, envelopes)
                body = respond(decider.fold(decided, state), version).model_dump(mode="json")
                headers = {"ETag": etag(version)}
                if location is not None:
                    headers["Location"] = location
                if key is not None:
                    await idempotency.remember(conn, scope, key, status_code, body, headers)
        except StreamConflict:
            # Decide again on fresh state; a stale If-Match then fails its check above.
            if attempt == RETRIES - 1:
                raise conflict("It is being changed by someone else: retry") from None
            continue
        EVENTS_APPENDED.labels(runtime.service).inc(len(envelopes))
        if envelopes:
            await runtime.events_committed()
        return JSONResponse(body, status_code=status_code, headers=headers)
    raise AssertionError("unreachable")


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
