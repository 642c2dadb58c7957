"""RFC 9457 problem details: every error any Concord service answers has this shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    type: str = Field(description="A URI reference naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation errors, when the request was invalid"
    )


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_response(
    error: ProblemError, *, instance: str | None, request_id: str | None
) -> JSONResponse:
    body = Problem(
        type=f"/problems/{error.slug}",
        title=error.title,
        status=error.status,
        detail=error.detail,
        instance=instance,
        request_id=request_id,
        errors=error.errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


def bad_request(detail: str) -> ProblemError:
    return ProblemError(400, "bad-request", "Bad request", detail)


def not_found(detail: str = "Not found") -> ProblemError:
    return ProblemError(404, "not-found", "Not found", detail)


def conflict(detail: str) -> ProblemError:
    return ProblemError(409, "conflict", "Conflict", detail)


def precondition_failed(detail: str) -> ProblemError:
    return ProblemError(412, "precondition-failed", "Precondition failed", detail)


def payload_too_large(limit: int) -> ProblemError:
    return ProblemError(
        413, "payload-too-large", "Request body too large", f"The body may be at most {limit} bytes"
    )


def unprocessable(
    detail: str, slug: str = "rule-violated", title: str = "Rule violated"
) -> ProblemError:
    return ProblemError(422, slug, title, detail)


ERROR_STATUSES = {
    400: "Malformed request",
    401: "Missing or invalid bearer token",
    403: "The caller's role does not allow this",
    404: "Not found, or not visible to the caller's organisation",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflicting concurrent change",
    412: "If-Match does not match the current version",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input or a business rule was broken",
    500: "Unexpected error",
    503: "A dependency is unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem bodies for these statuses."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": ERROR_STATUSES[status],
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        for status in statuses
    }
