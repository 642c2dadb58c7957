"""The one ASGI layer every service runs behind: request ids, access logs, HTTP metrics and
the body size limit."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concord.observability import UNMATCHED, record_http_request, request_id_var
from concord.problems import payload_too_large, problem_response

log = logging.getLogger("concord.http")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


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
        except BodyTooLarge:
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
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return limited

    async def _too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        error = payload_too_large(self.max_body_bytes)
        response = problem_response(error, instance=scope["path"], request_id=request_id)
        await response(scope, _no_body, send)


class BodyTooLarge(StarletteHTTPException):
    """A body stream that outgrew the limit (no Content-Length, or one that lied). It is an
    HTTPException because FastAPI passes those on from body parsing; any other exception
    there becomes a 400 "error parsing the body"."""

    def __init__(self, limit: int) -> None:
        super().__init__(413)
        self.limit = limit


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
