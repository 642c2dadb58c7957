"""The HTTP conventions every service shares: one app factory, problem+json for every error,
request ids, size limits, bearer auth, ETags, cursor pagination, health and metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concord import commands
from concord.auth import ALLIANCE_MANAGER, Unauthorized
from concord.commands import (
    VERSION_PATTERN,
    Answer,
    CommandContext,
    Idempotent,
    Version,
    View,
    etag,
)
from concord.domain import Actor, Decider, Forbidden, NotFound, Rejected
from concord.observability import (
    HTTP_METHODS,
    UNMATCHED,
    record_http_request,
    request_id_var,
    valid_traceparent,
)
from concord.pagination import Page
from concord.problems import (
    PROBLEM_JSON,
    Problem,
    ProblemError,
    bad_request,
    payload_too_large,
    problem_response,
    problem_responses,
)
from concord.runtime import ServiceRuntime

log = logging.getLogger("concord.http")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
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

# One ETag as `etag` writes it (weak or strong: a version is both), a stream's version or a
# view's (`"12.3"`); servers strip the spaces around a header's value. The document and the
# check share this.
ETAG_PATTERN = re.compile(rf'(?:W/)?"({VERSION_PATTERN})"')


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


# --- middleware ---------------------------------------------------------------------------


class RequestContext:
    """Request ids, access logs, metrics and the body size limit, as one pure ASGI layer
    (it must see the raw body stream to refuse an oversize body before anything reads it)."""

    def __init__(self, app: ASGIApp, *, service: str, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if REQUEST_ID.match(incoming) else str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(scope, send_with_id, request_id)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        except _BodyTooLarge:
            await self._too_large(scope, send_with_id, request_id)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            elapsed = time.perf_counter() - started
            record_http_request(self.service, scope["method"], route, status, elapsed)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        return limited

    async def _too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        error = payload_too_large(self.max_body_bytes)
        response = problem_response(error, instance=scope["path"], request_id=request_id)
        await response(scope, _no_body, send)


class _BodyTooLarge(StarletteHTTPException):
    """A body stream that outgrew the limit (no Content-Length, or one that lied). It is an
    HTTPException because FastAPI passes those on from body parsing; any other exception
    there becomes a 400 "error parsing the body"."""

    def __init__(self, limit: int) -> None:
        super().__init__(413)
        self.limit = limit


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


# --- error handlers -----------------------------------------------------------------------


def _answer(request: Request, error: ProblemError) -> JSONResponse:
    return problem_response(error, instance=request.url.path, request_id=request_id_var.get())


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. The router's own 405 names only the methods
    of the first route whose path matched, so a path with a GET route and a POST route
    answered `Allow: POST` to a PUT (RFC 9110 wants all of them)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ProblemError)
        return _answer(request, error)

    async def on_validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        issues = error.errors()
        if any(issue.get("type") == "json_invalid" for issue in issues):
            return _answer(request, bad_request("The request body is not valid JSON"))
        errors = [
            {
                "location": ".".join(str(part) for part in issue.get("loc", ())),
                "message": issue.get("msg", ""),
                "type": issue.get("type", ""),
            }
            for issue in issues
        ]
        return _answer(
            request,
            ProblemError(
                422,
                "validation-error",
                "Invalid input",
                "The request does not match the API's schema; see errors",
                errors=errors,
            ),
        )

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "HTTP error")
        slug = title.lower().replace(" ", "-")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return _answer(
            request,
            ProblemError(error.status_code, slug, title, str(error.detail), headers=headers),
        )

    async def on_too_large(request: Request, error: Exception) -> Response:
        assert isinstance(error, _BodyTooLarge)
        return _answer(request, payload_too_large(error.limit))

    async def on_unauthorized(request: Request, error: Exception) -> Response:
        assert isinstance(error, Unauthorized)
        return _answer(
            request,
            ProblemError(
                401,
                "unauthorized",
                "Unauthorized",
                error.detail,
                headers={"WWW-Authenticate": error.challenge},
            ),
        )

    async def on_rejected(request: Request, error: Exception) -> Response:
        assert isinstance(error, Rejected)
        errors = (
            [{"location": error.field_name, "message": error.detail}] if error.field_name else None
        )
        return _answer(
            request,
            ProblemError(422, "rule-violated", "Rule violated", error.detail, errors=errors),
        )

    async def on_not_found(request: Request, error: Exception) -> Response:
        assert isinstance(error, NotFound)
        return _answer(request, ProblemError(404, "not-found", "Not found", error.detail))

    async def on_forbidden(request: Request, error: Exception) -> Response:
        assert isinstance(error, Forbidden)
        return _answer(request, ProblemError(403, "forbidden", "Forbidden", error.detail))

    async def on_database_error(request: Request, error: Exception) -> Response:
        if not _database_unreachable(error):
            return await on_unexpected(request, error)
        log.warning("database unreachable: %s", error)
        return _answer(
            request,
            ProblemError(
                503,
                "database-unavailable",
                "Service unavailable",
                "The database does not answer; nothing was written. Retry shortly.",
                headers={"Retry-After": "1"},
            ),
        )

    async def on_unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error", exc_info=error)
        return _answer(
            request,
            ProblemError(
                500, "internal-error", "Internal error", "Something went wrong on our side"
            ),
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(_BodyTooLarge, on_too_large)
    app.add_exception_handler(Unauthorized, on_unauthorized)
    app.add_exception_handler(Rejected, on_rejected)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(SQLAlchemyTimeoutError, on_database_error)
    app.add_exception_handler(OSError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


def _database_unreachable(error: Exception) -> bool:
    """A lost or refused connection (PostgreSQL restarting, failing over), as opposed to a
    bug in a statement, which stays a 500."""
    if isinstance(error, SQLAlchemyTimeoutError | OSError | OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


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

# Visible ASCII, as keys are usually UUIDs; the document and the check share this.
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[!-~]{1,255}")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Send the same key again to get the first answer again, with nothing done "
    "twice; the same key with a different request is refused (422).",
    "schema": {"type": "string", "pattern": f"^{IDEMPOTENCY_KEY_PATTERN.pattern}$"},
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "The ETag you last read (or `*`, any version); the command is refused "
    "(412) if the alliance has changed since.",
    "schema": {"type": "string", "pattern": f"^(\\*|{ETAG_PATTERN.pattern})$"},
}
ETAG = {
    "description": "The alliance's version after this change, for the next If-Match: one "
    'number ("12"), or the shared and your private version of a view of both ("12.3")',
    "schema": {"type": "string"},
}


# Marks an operation called by another system with a signed body instead of a bearer token.
SIGNED_WEBHOOK = "x-concord-signed-webhook"
# Marks a POST that writes no event (`commands.remembered`): Idempotency-Key, but no ETag.
NOT_A_STREAM = "x-concord-not-a-stream"
# Marks an operator's POST (`concord.ops`): neither an Idempotency-Key nor an ETag.
OPERATION = "x-concord-operation"


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema with its definitions inlined, for an `openapi_extra` request
    body (an operation that reads its raw body itself, to check a signature over it)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def document_command_headers(schema: dict[str, Any]) -> None:
    """Every command (a POST) takes an Idempotency-Key and answers with an ETag; commands on
    an existing aggregate (a path with an id) also take If-Match. `commands.execute` is the
    one place that honours them, so the document states them once, here."""
    for path, operations in schema["paths"].items():
        command = operations.get("post")
        if command is None or command.get(SIGNED_WEBHOOK) or command.get(OPERATION):
            continue  # a signed webhook is idempotent by its own event ids
        parameters = command.setdefault("parameters", [])
        parameters.append(IDEMPOTENCY_KEY)
        if command.get(NOT_A_STREAM):
            continue
        if "{" in path:
            parameters.append(IF_MATCH)
        for status, response in command["responses"].items():
            if status.startswith("2"):
                response.setdefault("headers", {})["ETag"] = ETAG


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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema()
            for path in ("/livez", "/readyz", "/metrics"):
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
                    for status in ("400", "401", "404", "413", "422"):
                        operation["responses"].pop(status, None)
            document_command_headers(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
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
