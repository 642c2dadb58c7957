"""Scorecard HTTP API. Reads come from scorecard's own read models only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB

from concord.domain import NotFound
from concord.http import CallerDep, RuntimeDep

router = APIRouter(prefix="/alliances", tags=["alliances"])


class Partner(BaseModel):
    org_id: str
    name: str


class Sponsor(BaseModel):
    org_id: str
    name: str
    title: str | None = None


class KnownAlliance(BaseModel):
    id: UUID
    name: str
    purpose: str
    goals: list[str]
    partners: list[Partner]
    executive_sponsors: list[Sponsor]
    agreement_version: int
    version: int
    updated_at: datetime


_known = text(
    """SELECT alliance_id, name, purpose, goals, partners, executive_sponsors,
              agreement_version, version, updated_at
       FROM scorecard.known_alliances
       WHERE alliance_id = :id AND partner_orgs @> ARRAY[CAST(:org AS text)]
         AND version >= :min_version"""
).columns(goals=JSONB, partners=JSONB, executive_sponsors=JSONB)


@router.get(
    "/{alliance_id}",
    operation_id="alliances-get",
    summary="An alliance as scorecard knows it",
    description=(
        "Served from scorecard's projection of governance's events. A client that has just "
        "written in governance can pass the version it got back (its ETag) as `min_version`: "
        "the read waits briefly for the projection to catch up, then answers 404 if it has not."
    ),
    response_model=KnownAlliance,
)
async def get_alliance(
    alliance_id: UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    min_version: Annotated[int, Query(ge=1, le=1_000_000_000)] = 1,
) -> KnownAlliance:
    async def lookup() -> Any:
        async with runtime.engine.connect() as conn:
            params = {"id": alliance_id, "org": caller.org, "min_version": min_version}
            return (await conn.execute(_known, params)).first()

    row = await runtime.read_your_writes(lookup, projection="known_alliances")
    if row is None:
        raise NotFound(
            "No such alliance is known to scorecard yet (or it is not visible to your "
            "organisation); if it was just created, retry shortly"
        )
    return KnownAlliance(
        id=row.alliance_id,
        name=row.name,
        purpose=row.purpose,
        goals=row.goals,
        partners=row.partners,
        executive_sponsors=row.executive_sponsors,
        agreement_version=row.agreement_version,
        version=row.version,
        updated_at=row.updated_at,
    )
