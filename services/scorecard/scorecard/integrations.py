"""CRM pipeline ingestion: partners' CRMs push batches of pipeline events, signed with an
integration credential issued per alliance and organisation.

A request is signed, not bearer-authenticated: `Concord-Credential` names the credential,
`Concord-Timestamp` is Unix seconds, and `Concord-Signature` is `v1=` and the hex
HMAC-SHA256 of `<timestamp>.<body>` under the credential's secret. A timestamp more than
five minutes from now, or a signature already received, is refused; so is anything that
does not verify, before a byte of it is read as JSON. Items are then idempotent by the CRM's
own event id: a re-sent batch changes nothing and says so item by item.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import JSONResponse, Response

from concord import commands
from concord.auth import SIGNATURE_CHALLENGE, Unauthorized, verify_signature
from concord.domain import Actor, NotFound
from concord.http import (
    CallerDep,
    ContextDep,
    RuntimeDep,
    answer,
    context_of,
    read_json,
    require_manager,
)
from concord.openapi import NOT_A_STREAM, SIGNED_WEBHOOK, inline_schema
from concord.problems import ProblemError, problem_responses
from scorecard.api import known_alliance
from scorecard.domain.ingestion import IngestPipeline
from scorecard.domain.partner_view import PartnerView, ingest, private_stream_id
from scorecard.domain.pipeline import MAX_BATCH, PipelineItem
from scorecard.domain.scorecard import scorecard, stream_id
from scorecard.views.versions import Versioned

router = APIRouter(tags=["integrations"])
TOLERANCE_SECONDS = 300
# Its tables (crm_credentials, crm_deliveries, crm_receipts) are in scorecard.tables, and
# scorecard's migrations make them.

# --- credentials ----------------------------------------------------------------------------


class IssuedCredential(BaseModel):
    key_id: str
    secret: str = Field(description="Shown once: keep it in the CRM's secret store")
    alliance_id: UUID
    org_id: str
    created_at: datetime


class Credential(BaseModel):
    key_id: str
    alliance_id: UUID
    org_id: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


_issue = text(
    """INSERT INTO scorecard.crm_credentials
           (key_id, alliance_id, org_id, sealed_secret, created_by)
       VALUES (:key_id, :alliance_id, :org, :sealed, :by) RETURNING created_at"""
)
_list = text(
    """SELECT key_id, alliance_id, org_id, created_by, created_at, revoked_at
       FROM scorecard.crm_credentials WHERE alliance_id = :alliance_id AND org_id = :org
       ORDER BY created_at, key_id"""
)
_revoke = text(
    """UPDATE scorecard.crm_credentials SET revoked_at = coalesce(revoked_at, now())
       WHERE key_id = :key_id AND alliance_id = :alliance_id AND org_id = :org"""
)
_credential = text(
    """SELECT alliance_id, org_id, sealed_secret FROM scorecard.crm_credentials
       WHERE key_id = :key_id AND revoked_at IS NULL"""
)


@router.post(
    "/alliances/{alliance_id}/integrations/crm/credentials",
    operation_id="crm-credentials-issue",
    summary="Issue a CRM integration credential for your organisation in this alliance",
    status_code=201,
    response_model=IssuedCredential,
    # 409 `shown-once`: a repeat with the same Idempotency-Key (the secret is not kept).
    responses=problem_responses(403, 409),
    openapi_extra={NOT_A_STREAM: True},
)
async def issue_credential(
    alliance_id: UUID, caller: CallerDep, context: ContextDep, runtime: RuntimeDep
) -> JSONResponse:
    await known_alliance(runtime, alliance_id, caller)
    require_manager(caller)

    async def issue(conn: AsyncConnection) -> IssuedCredential:
        key_id, secret = f"crm_{secrets.token_hex(12)}", secrets.token_urlsafe(32)
        params = {
            "key_id": key_id,
            "alliance_id": alliance_id,
            "org": caller.org,
            "sealed": runtime.secrets.seal(secret),
            "by": caller.sub,
        }
        created_at = (await conn.execute(_issue, params)).scalar_one()
        return IssuedCredential(
            key_id=key_id,
            secret=secret,
            alliance_id=alliance_id,
            org_id=caller.org,
            created_at=created_at,
        )

    issued = commands.remembered(
        runtime, context, act=issue, status_code=201, shown_once=("secret",)
    )
    return answer(await issued)


@router.get(
    "/alliances/{alliance_id}/integrations/crm/credentials",
    operation_id="crm-credentials-list",
    summary="Your organisation's CRM credentials in this alliance (never their secrets)",
    response_model=list[Credential],
)
async def list_credentials(
    alliance_id: UUID, caller: CallerDep, runtime: RuntimeDep
) -> list[Credential]:
    await known_alliance(runtime, alliance_id, caller)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(_list, {"alliance_id": alliance_id, "org": caller.org})).all()
    return [Credential.model_validate(row, from_attributes=True) for row in rows]


@router.delete(
    "/alliances/{alliance_id}/integrations/crm/credentials/{key_id}",
    operation_id="crm-credentials-revoke",
    summary="Revoke a credential: requests signed with it are refused from now on",
    status_code=204,
    responses=problem_responses(403),
)
async def revoke_credential(
    alliance_id: UUID,
    key_id: Annotated[str, Field(max_length=100)],
    caller: CallerDep,
    runtime: RuntimeDep,
) -> Response:
    await known_alliance(runtime, alliance_id, caller)
    require_manager(caller)
    async with runtime.engine.begin() as conn:
        params = {"key_id": key_id, "alliance_id": alliance_id, "org": caller.org}
        if (await conn.execute(_revoke, params)).rowcount == 0:
            raise NotFound("No such credential of your organisation in this alliance")
    return Response(status_code=204)


# --- ingestion ------------------------------------------------------------------------------


class PipelineBatch(BaseModel):
    """A batch of CRM pipeline events (documentation of the body; items are read one by one,
    so that one bad item is reported on its own and does not sink the others)."""

    events: list[PipelineItem] = Field(min_length=1, max_length=MAX_BATCH)


class _Envelope(BaseModel):
    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


class ItemError(BaseModel):
    location: str
    message: str


class ItemResult(BaseModel):
    index: int
    id: str | None = Field(description="The CRM event id, when the item had a readable one")
    status: Literal["accepted", "duplicate", "rejected"]
    detail: str | None = None
    errors: list[ItemError] = []


class IngestionReport(Versioned):
    """After the batch: the pipeline is on the shared scorecard (`version`), the actuals of
    the organisation's private KPIs it feeds on its private one (`private_version`)."""

    received: int
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


_item = TypeAdapter[Any](PipelineItem)
_delivered = text(
    """INSERT INTO scorecard.crm_deliveries (key_id, signature) VALUES (:key_id, :signature)
       ON CONFLICT DO NOTHING"""
)
_forget_deliveries = text(
    """DELETE FROM scorecard.crm_deliveries
       WHERE key_id = :key_id AND received_at < now() - make_interval(secs => :keep)"""
)
_receipts = text(
    """SELECT crm_event_id, content_hash FROM scorecard.crm_receipts
       WHERE alliance_id = :alliance_id AND org_id = :org AND crm_event_id = ANY(:ids)"""
).bindparams(bindparam("ids", type_=ARRAY(TEXT)))
_receive = text(
    """INSERT INTO scorecard.crm_receipts (alliance_id, org_id, crm_event_id, content_hash)
       VALUES (:alliance_id, :org, :id, :hash)"""
)

SIGNATURE_HEADERS = {
    "Concord-Credential": "The integration credential's key id",
    "Concord-Timestamp": "Unix seconds when the request was signed",
    "Concord-Signature": "v1= and the hex HMAC-SHA256 of `<timestamp>.<body>`",
}


@router.post(
    "/integrations/crm/events",
    operation_id="crm-events-ingest",
    summary="Ingest a batch of CRM pipeline events (signed with an integration credential)",
    description=__doc__,
    response_model=IngestionReport,
    responses={
        **problem_responses(401, 409),
        401: {
            "description": "Missing, unknown or revoked credential, stale timestamp, or a "
            "signature that does not verify",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        },
    },
    openapi_extra={
        SIGNED_WEBHOOK: True,
        "security": [],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(PipelineBatch)}},
        },
    },
)
async def ingest_crm_events(
    request: Request,
    runtime: RuntimeDep,
    credential: Annotated[
        str | None,
        Header(
            alias="Concord-Credential",
            max_length=100,
            description=SIGNATURE_HEADERS["Concord-Credential"],
        ),
    ] = None,
    timestamp: Annotated[
        str | None,
        Header(
            alias="Concord-Timestamp",
            max_length=20,
            description=SIGNATURE_HEADERS["Concord-Timestamp"],
        ),
    ] = None,
    signature: Annotated[
        str | None,
        Header(
            alias="Concord-Signature",
            max_length=200,
            description=SIGNATURE_HEADERS["Concord-Signature"],
        ),
    ] = None,
) -> JSONResponse:
    body = await request.body()
    signature = signature.strip() if signature else signature  # one form, for replay checks
    if not credential or not timestamp or not signature:
        raise Unauthorized(
            "Sign the request: Concord-Credential, Concord-Timestamp and Concord-Signature "
            "are required",
            SIGNATURE_CHALLENGE,
        )
    async with runtime.engine.connect() as conn:
        found = (await conn.execute(_credential, {"key_id": credential})).first()
    if found is None:
        raise Unauthorized("Unknown or revoked credential", SIGNATURE_CHALLENGE)
    secret = runtime.secrets.open(found.sealed_secret)
    verify_signature(
        secret, timestamp, body, signature, tolerance=TOLERANCE_SECONDS, now=time.time()
    )
    alliance_id, org = found.alliance_id, found.org_id
    items, results = _read_items(body)
    by = Actor(sub=f"crm:{credential}", org=org)

    async def handle(tx: commands.Transaction) -> IngestionReport:
        # The organisation's view: the shared scorecard and its own private one (ADR 0009).
        shared = await tx.stream(scorecard, stream_id(alliance_id), str(alliance_id))
        private = await tx.stream(scorecard, private_stream_id(alliance_id, org), str(alliance_id))
        conn = tx.conn
        await conn.execute(
            _forget_deliveries, {"key_id": credential, "keep": TOLERANCE_SECONDS * 2}
        )
        if (
            await conn.execute(_delivered, {"key_id": credential, "signature": signature})
        ).rowcount == 0:
            raise ProblemError(
                409,
                "replayed-delivery",
                "Replayed delivery",
                "This signed request was already received; to send the batch again, sign it "
                "with a fresh timestamp (its items are idempotent by their ids)",
            )
        ids = [item.id for _, item, _ in items]
        received = {
            row.crm_event_id: row.content_hash
            for row in await conn.execute(
                _receipts, {"alliance_id": alliance_id, "org": org, "ids": ids}
            )
        }
        receipts = []
        pending = items
        # An id repeated within the batch waits for a later round: it is a duplicate if its
        # first occurrence was accepted, and judged on its own if that one was rejected.
        while pending:
            now, later, ids_now = [], [], set()
            for entry in pending:
                index, item, content_hash = entry
                if item.id in received:
                    results[index] = _already(index, item.id, received[item.id] == content_hash)
                elif item.id in ids_now:
                    later.append(entry)
                else:
                    ids_now.add(item.id)
                    now.append(entry)
            batch = IngestPipeline(tuple(i for _, i, _ in now), org, by)
            outcome = ingest(PartnerView(shared.state, private.state), batch)
            for write, events, state in zip(
                (shared, private), outcome.events, outcome.states, strict=True
            ):
                await write.append(events, folded=state)
            for (index, item, content_hash), verdict in zip(now, outcome.verdicts, strict=True):
                if verdict.accepted:
                    results[index] = ItemResult(index=index, id=item.id, status="accepted")
                    received[item.id] = content_hash
                    receipts.append(
                        {
                            "alliance_id": alliance_id,
                            "org": org,
                            "id": item.id,
                            "hash": content_hash,
                        }
                    )
                else:
                    results[index] = ItemResult(
                        index=index, id=item.id, status="rejected", detail=verdict.reason
                    )
            pending = later
        if receipts:
            await conn.execute(_receive, receipts)
        ordered = [results[i] for i in sorted(results)]
        return IngestionReport(
            received=len(ordered),
            accepted=sum(r.status == "accepted" for r in ordered),
            duplicates=sum(r.status == "duplicate" for r in ordered),
            rejected=sum(r.status == "rejected" for r in ordered),
            version=shared.version,
            private_version=private.version,
            results=ordered,
        )

    report = await commands.transaction(runtime, context_of(request, by, runtime), handle)
    return JSONResponse(report.model_dump(mode="json"))


def _already(index: int, crm_event_id: str, same: bool) -> ItemResult:
    return ItemResult(
        index=index,
        id=crm_event_id,
        status="duplicate" if same else "rejected",
        detail="Already received"
        if same
        else "This event id was already received with different content",
    )


def _read_items(body: bytes) -> tuple[list[tuple[int, Any, str]], dict[int, ItemResult]]:
    """The batch's items that read as pipeline events (with a hash of their content), and a
    result for each that does not. Only a body that is not a batch at all is refused whole."""
    try:
        envelope = _Envelope.model_validate(read_json(body))
    except ValidationError as error:
        raise ProblemError(
            422,
            "validation-error",
            "Invalid input",
            f'The body must be {{"events": [...]}} with 1 to {MAX_BATCH} items',
            errors=[
                {
                    "location": ".".join(str(p) for p in ("body", *e["loc"])),
                    "message": e["msg"],
                    "type": e["type"],
                }
                for e in error.errors()
            ],
        ) from None
    items: list[tuple[int, Any, str]] = []
    results: dict[int, ItemResult] = {}
    for index, candidate in enumerate(envelope.events):
        try:
            item = _item.validate_python(candidate)
        except ValidationError as error:
            given = candidate.get("id") if isinstance(candidate, dict) else None
            results[index] = ItemResult(
                index=index,
                id=given if isinstance(given, str) and len(given) <= 200 else None,
                status="rejected",
                detail="The item is not a pipeline event this API reads; see errors",
                errors=[
                    ItemError(
                        location=".".join(str(p) for p in ("events", index, *e["loc"])),
                        message=e["msg"],
                    )
                    for e in error.errors()
                ],
            )
            continue
        content = json.dumps(candidate, sort_keys=True, separators=(",", ":"))
        items.append((index, item, hashlib.sha256(content.encode()).hexdigest()))
    return items, results
