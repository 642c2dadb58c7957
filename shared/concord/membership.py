"""Alliance membership, the one thing every service must know about every alliance: who its
partners are. Governance owns the charter and publishes these events; every service keeps
the same local projection of them (`Alliances`, in its own schema) and asks it the same
question (`Alliances.known`): may this organisation see this alliance?

The charter events are defined here, as the published language between governance and the
rest, so that the writer and every reader share one definition and one set of upcasters.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT
from sqlalchemy.ext.asyncio import AsyncConnection

from concord.db import checked_schema
from concord.domain import DomainEvent, NotFound, OrgId, ShortText
from concord.events import CloudEvent, EventRegistry, Recorded
from concord.projections import Projection, ReadModel

if TYPE_CHECKING:
    from concord.runtime import ServiceRuntime

# --- the charter's published language -------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartnerOrganisation(Body):
    org_id: OrgId = Field(description="The organisation's id, as in its members' tokens")
    name: ShortText


class ExecutiveSponsor(Body):
    org_id: OrgId = Field(description="The partner organisation the sponsor speaks for")
    name: ShortText
    title: ShortText | None = None


class AllianceEvent(DomainEvent):
    aggregate: ClassVar[str] = "alliance"


class AllianceCreated(AllianceEvent):
    schema_version: ClassVar[int] = 2
    alliance_id: UUID
    name: str
    purpose: str
    goals: list[str]
    partners: list[PartnerOrganisation]


class PartnerAdded(AllianceEvent):
    schema_version: ClassVar[int] = 2
    partner: PartnerOrganisation


class ExecutiveSponsorAppointed(AllianceEvent):
    schema_version: ClassVar[int] = 2
    sponsor: ExecutiveSponsor


class RelationalExpectationRecorded(AllianceEvent):
    schema_version: ClassVar[int] = 2
    number: int
    statement: str


class PartnershipAgreementVersionAgreed(AllianceEvent):
    schema_version: ClassVar[int] = 2
    version: int
    summary: str
    text: str
    effective_from: date


CHARTER_EVENTS: tuple[type[AllianceEvent], ...] = (
    AllianceCreated,
    PartnerAdded,
    ExecutiveSponsorAppointed,
    RelationalExpectationRecorded,
    PartnershipAgreementVersionAgreed,
)
CHARTER = EventRegistry("governance")
CHARTER.register(*CHARTER_EVENTS)
# Version 1 named who did it in the payload; the envelope says so now.
for _event, _verb in (
    (AllianceCreated, "created"),
    (PartnerAdded, "added"),
    (ExecutiveSponsorAppointed, "appointed"),
    (RelationalExpectationRecorded, "recorded"),
    (PartnershipAgreementVersionAgreed, "agreed"),
):
    CHARTER.actor_moved(_event, 1, org=f"{_verb}_by_org", sub=f"{_verb}_by")


def charter_stream(alliance_id: UUID | str) -> str:
    return f"alliance-{alliance_id}"


# --- every service's projection of it -------------------------------------------------------


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
    version: int = Field(description="The charter's version in governance (its ETag)")
    created_at: datetime
    updated_at: datetime

    @property
    def partner_orgs(self) -> tuple[str, ...]:
        return tuple(p.org_id for p in self.partners)


class Alliances(Projection):
    """The alliances this service knows, with their partners, sponsors and charter version.
    Its table is the kernel's (`concord.tables`), in every service schema."""

    name = "alliances"
    events = CHARTER
    subjects = ("concord.governance.alliance.>",)

    def __init__(self, schema: str) -> None:
        s = checked_schema(schema)
        self.table = f"{s}.alliances"
        self.tables = (self.table,)
        t = self.table
        self._created = text(
            f"""INSERT INTO {t} (alliance_id, name, purpose, goals, partners, partner_orgs,
                   version, created_at, updated_at)
               VALUES (:id, :name, :purpose, :goals, :partners, :orgs, :version, :at, :at)
               ON CONFLICT (alliance_id) DO NOTHING"""
        ).bindparams(
            bindparam("goals", type_=JSONB),
            bindparam("partners", type_=JSONB),
            bindparam("orgs", type_=ARRAY(TEXT)),
        )
        self._partner_added = text(
            f"""UPDATE {t} SET partners = partners || jsonb_build_array(:partner),
                   partner_orgs = array_append(partner_orgs, :org),
                   version = :version, updated_at = :at
               WHERE alliance_id = :id AND version < :version"""
        ).bindparams(bindparam("partner", type_=JSONB))
        self._sponsor_appointed = text(
            f"""UPDATE {t} SET executive_sponsors = coalesce((
                       SELECT jsonb_agg(s) FROM jsonb_array_elements(executive_sponsors) s
                       WHERE s->>'org_id' <> :org), '[]'::jsonb) || jsonb_build_array(:sponsor),
                   version = :version, updated_at = :at
               WHERE alliance_id = :id AND version < :version"""
        ).bindparams(bindparam("sponsor", type_=JSONB))
        self._agreement_agreed = text(
            f"""UPDATE {t} SET agreement_version = :agreement_version, version = :version,
                   updated_at = :at
               WHERE alliance_id = :id AND version < :version"""
        )
        self._touched = text(
            f"""UPDATE {t} SET version = :version, updated_at = :at
               WHERE alliance_id = :id AND version < :version"""
        )
        self._known = text(
            f"""SELECT alliance_id, name, purpose, goals, partners, executive_sponsors,
                   agreement_version, version, created_at, updated_at
               FROM {t}
               WHERE alliance_id = :id AND partner_orgs @> ARRAY[CAST(:org AS text)]
                 AND version >= :min_version"""
        ).columns(goals=JSONB, partners=JSONB, executive_sponsors=JSONB)
        self._partner_orgs = text(f"SELECT partner_orgs FROM {t} WHERE alliance_id = :id")
        self.of_org = text(
            f"""SELECT alliance_id, name, partner_orgs, created_at, version FROM {t}
               WHERE partner_orgs @> ARRAY[CAST(:org AS text)]
                 AND (created_at, alliance_id) > (:after_time, :after_id)
               ORDER BY created_at, alliance_id LIMIT :limit"""
        )

    async def apply(self, model: ReadModel, recorded: Recorded[Any]) -> None:
        common: dict[str, Any] = {
            "id": recorded.alliance_id,
            "version": recorded.stream_version,
            "at": recorded.time,
        }
        match recorded.event:
            case AllianceCreated() as e:
                partners = [p.model_dump(mode="json") for p in e.partners]
                model.write(
                    self._created,
                    {
                        **common,
                        "name": e.name,
                        "purpose": e.purpose,
                        "goals": e.goals,
                        "partners": partners,
                        "orgs": [p.org_id for p in e.partners],
                    },
                )
            case PartnerAdded(partner=partner):
                model.write(
                    self._partner_added,
                    {**common, "partner": partner.model_dump(mode="json"), "org": partner.org_id},
                )
            case ExecutiveSponsorAppointed(sponsor=sponsor):
                model.write(
                    self._sponsor_appointed,
                    {**common, "sponsor": sponsor.model_dump(mode="json"), "org": sponsor.org_id},
                )
            case PartnershipAgreementVersionAgreed(version=agreement_version):
                model.write(
                    self._agreement_agreed, {**common, "agreement_version": agreement_version}
                )
            case _:
                model.write(self._touched, common)

    async def apply_other(self, model: ReadModel, event: CloudEvent) -> None:
        # A charter event this code does not know yet still moves the charter's version.
        model.write(
            self._touched,
            {"id": event.allianceid, "version": event.streamversion, "at": event.time},
        )

    async def partners(self, conn: AsyncConnection, alliance_id: UUID | str) -> tuple[str, ...]:
        """The alliance's partner organisations as governance says now (none if unknown), for
        Concord's own work on every partner's behalf; a caller's reads go through `known`."""
        row = (await conn.execute(self._partner_orgs, {"id": alliance_id})).first()
        return tuple(row.partner_orgs) if row else ()

    async def known(
        self,
        runtime: ServiceRuntime,
        alliance_id: UUID,
        org: str,
        min_version: int | None = None,
    ) -> KnownAlliance:
        """The alliance, if `org` is one of its partners; 404 otherwise, at once. Only a
        caller that asks to read its own write (`min_version`, the charter's ETag) waits,
        briefly, for this projection to catch up with governance."""

        async def lookup() -> Any:
            async with runtime.engine.connect() as conn:
                params = {"id": alliance_id, "org": org, "min_version": min_version or 1}
                return (await conn.execute(self._known, params)).first()

        if min_version is None:
            row = await lookup()
        else:
            row = await runtime.read_your_writes(lookup, projection=self.name)
        if row is None:
            raise NotFound(
                "No such alliance is known here (or it is not visible to your organisation)"
                + ("; it has not caught up with that version yet: retry" if min_version else "")
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
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
