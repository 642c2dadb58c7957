"""The HTTP conventions every service shares: one app factory, problem+json for every error,
request ids, size limits, bearer auth, ETags, cursor pagination, health and metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.responses import JSONResponse, PlainTextResponse, Response

from concord import commands
from concord.auth import ALLIANCE_MANAGER
from concord.commands import (
    Answer,
    CommandContext,
    Idempotent,
    Version,
    View,
    etag,
)
from concord.domain import Actor, Decider, Forbidden
from concord.errors import install_problem_handlers
from concord.middleware import RequestContext
from concord.observability import (
    request_id_var,
    valid_traceparent,
)
from concord.openapi import (
    ETAG_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    service_openapi,
)
from concord.pagination import Page
from concord.problems import (
    PROBLEM_JSON,
    ProblemError,
    bad_request,
    problem_response,
    problem_responses,
)
from concord.runtime import ServiceRuntime

log = logging.getLogger("concord.http")
S = TypeVar("S")
V = TypeVar("V")
C = TypeVar("C")


# --- dependencies -------------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="A JWT with claims sub, org and roles")


def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    runtime = get_runtime(request)
    header = (
        f"Bearer {credentials.credentials}" if credentials else request.headers.get("authorization")
    )
    return await runtime.authenticator.authenticate(header)


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
CallerDep = Annotated[Actor, Depends(get_caller)]


def context_of(
    request: Request, actor: Actor, runtime: ServiceRuntime, idempotency: Idempotent | None = None
) -> CommandContext:
    """A request as the cause of a command: its id is the correlation and the causation, its
    trace context (when valid) is carried into the events."""
    request_id = request_id_var.get() or str(uuid.uuid4())
    return CommandContext(
        actor=actor,
        correlation_id=request_id,
        causation_id=request_id,
        traceparent=valid_traceparent(request.headers.getlist("traceparent")),
        idempotency=idempotency,
        clock=runtime.clock,
    )


async def get_context(request: Request, caller: CallerDep, runtime: RuntimeDep) -> CommandContext:
    """The command context of a caller's request, with its Idempotency-Key bound to what
    was asked."""
    key = _idempotency_key(request)
    scope = f"{caller.org}/{caller.sub}"
    idempotency = None if key is None else Idempotent(scope, key, await _request_hash(request))
    return context_of(request, caller, runtime, idempotency)


ContextDep = Annotated[CommandContext, Depends(get_context)]


def answer(result: Answer) -> JSONResponse:
    return JSONResponse(result.body, status_code=result.status_code, headers=result.headers)


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


def require_manager(caller: Actor) -> None:
    if ALLIANCE_MANAGER not in caller.roles:
        raise Forbidden(f"Only an {ALLIANCE_MANAGER} may change the alliance")


class CommandRequest:
    """A caller's request for a command, as its route holds it: `execute` runs the command
    on one stream (`execute_view` on several) with the request's context and If-Match, and
    answers it."""

    def __init__(self, request: Request, context: CommandContext, runtime: ServiceRuntime):
        self.request = request
        self.context = context
        self.runtime = runtime

    @property
    def caller(self) -> Actor:
        return self.context.actor

    async def execute(
        self,
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
        return await self.execute_view(
            View.of_one(decider),
            stream_ids=(stream_id,),
            alliance_id=alliance_id,
            command=command,
            authorize=authorize,
            respond=lambda state, version: respond(state, version.part(0)),
            status_code=status_code,
            location=location,
        )

    async def execute_view(
        self,
        view: View[S, V, C],
        *,
        stream_ids: Sequence[str],
        alliance_id: str,
        command: C,
        authorize: Callable[[V], None],
        respond: Callable[[V, Version], BaseModel],
        status_code: int = 200,
        location: str | None = None,
    ) -> JSONResponse:
        """`execute` on a view of several streams: its ETag and If-Match are the view's."""
        result = await commands.execute_view(
            self.runtime,
            self.context,
            view,
            stream_ids=stream_ids,
            alliance_id=alliance_id,
            command=command,
            authorize=authorize,
            respond=respond,
            expected_version=if_match_version(self.request),
            status_code=status_code,
            location=location,
        )
        return answer(result)


def get_command_request(
    request: Request, context: ContextDep, runtime: RuntimeDep
) -> CommandRequest:
    return CommandRequest(request, context, runtime)


CommandDep = Annotated[CommandRequest, Depends(get_command_request)]


# --- ETags ----------------------------------------------------------------------------------


def if_match_version(request: Request) -> Version | None:
    """The version an If-Match header expects (a stream's, or a view's: `"12.3"`), or None
    when there is none (or `*`). A value that is not one ETag as IF_MATCH documents is
    malformed (400): 412 means only that a well-formed ETag no longer matches."""
    value = request.headers.get("if-match")
    if value is None or value == "*":
        return None
    match = ETAG_PATTERN.fullmatch(value)
    version = Version.parse(match.group(1)) if match else None
    if version is None:
        raise bad_request('If-Match must be one ETag, like "3", or *')
    return version


# How deep a body an operation reads itself (`read_json`) may nest: far more than any of
# ours needs. Every object or array is a level: `{"events": [{}]}` is 3 deep.
MAX_JSON_DEPTH = 32


def read_json(body: bytes) -> Any:
    """The JSON of a body an operation reads itself (a signed webhook, whose signature is over
    the raw bytes), or a 400 problem when it is not JSON or nests deeper than
    MAX_JSON_DEPTH."""
    too_deep = bad_request(f"The body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(body)
    except RecursionError:  # deeper than the parser's recursion reaches: deeper than ours
        raise too_deep from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The request body is not valid JSON") from None
    if _nesting(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


def _nesting(value: Any) -> int:
    """How deep a parsed JSON value nests, found level by level (no recursion), up to just
    past the limit."""
    depth, level = 0, [value] if isinstance(value, dict | list) else []
    while level and depth <= MAX_JSON_DEPTH:
        depth += 1
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return depth


# --- health and metrics -------------------------------------------------------------------

health = APIRouter(tags=["operations"])


@health.get("/livez", operation_id="operations-livez", summary="The process is alive")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@health.get(
    "/readyz",
    operation_id="operations-readyz",
    summary="Ready for traffic: PostgreSQL answers (NATS is reported, not required)",
    responses=problem_responses(503),
)
async def readyz(runtime: RuntimeDep) -> Response:
    """Without PostgreSQL nothing works, so that fails readiness. Without NATS, commands still
    commit (the outbox holds their events) and reads are served, so the service stays ready
    and reports itself degraded: taking every replica out of its Service during a NATS
    outage would turn a delay into an outage."""
    checks = await runtime.readiness()
    if checks["postgres"]:
        status = "ok" if all(checks.values()) else "degraded"
        return JSONResponse({"status": status, "checks": checks})
    error = ProblemError(503, "not-ready", "Not ready", "PostgreSQL does not answer")
    return problem_response(error, instance="/readyz", request_id=request_id_var.get())


@health.get(
    "/metrics",
    operation_id="operations-metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,  # documents the text exposition format, not JSON
)
async def metrics() -> Response:
    # Rendering walks every series under the registry's lock: off the event loop, a scrape
    # never holds up the requests being served.
    return Response(await asyncio.to_thread(generate_latest), media_type=CONTENT_TYPE_LATEST)


# --- the factory --------------------------------------------------------------------------

COMMON_ERRORS = (400, 401, 404, 413, 422, 500, 503)


def create_service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    on_startup: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if on_startup is not None:
            await on_startup()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        responses=problem_responses(*COMMON_ERRORS),
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.add_middleware(
        RequestContext,
        service=runtime.settings.service,
        max_body_bytes=runtime.settings.max_body_bytes,
    )
    app.include_router(health)
    from concord import ops  # ops builds on this module's dependencies

    app.include_router(ops.router)
    for router in routers:
        app.include_router(router)

    app.openapi = lambda: service_openapi(app)  # type: ignore[method-assign]
    return app


__all__ = [
    "PROBLEM_JSON",
    "CallerDep",
    "CommandDep",
    "ContextDep",
    "Page",
    "RuntimeDep",
    "Version",
    "answer",
    "create_service_app",
    "etag",
    "if_match_version",
    "read_json",
    "require_manager",
]
