"""How whatever a request raises becomes an RFC 9457 problem: the kernel's exceptions (a
rule violated, not found, forbidden, unauthorized), FastAPI's validation and routing errors,
an oversize body, and a database that does not answer (503, as opposed to a bug: 500)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from concord.auth import Unauthorized
from concord.domain import Forbidden, NotFound, Rejected
from concord.middleware import BodyTooLarge
from concord.observability import HTTP_METHODS, request_id_var
from concord.problems import ProblemError, bad_request, payload_too_large, problem_response

log = logging.getLogger("concord.http")


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
        assert isinstance(error, BodyTooLarge)
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
    app.add_exception_handler(BodyTooLarge, on_too_large)
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
