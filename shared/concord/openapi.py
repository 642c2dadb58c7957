"""What every service's OpenAPI document says of the kernel's conventions: the command
headers (Idempotency-Key, If-Match, ETag) with the patterns the checks use, the markers
routes set on operations that differ, and the Problem schema."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from concord.commands import VERSION_PATTERN
from concord.problems import Problem

# One ETag as `etag` writes it (weak or strong: a version is both), a stream's version or a
# view's (`"12.3"`); servers strip the spaces around a header's value. The document and the
# check share this.
ETAG_PATTERN = re.compile(rf'(?:W/)?"({VERSION_PATTERN})"')


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


def service_openapi(app: FastAPI) -> dict[str, Any]:
    """A service's document, built once: the routes', plus the kernel's conventions (the
    Problem schema, the command headers), without auth or input errors on the health routes."""
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
