"""The alliance charter: who the partners are, why they ally, how they agreed to behave.

Pure: `decide(state, command) -> events` and `evolve(state, event) -> state`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from concord.domain import Actor, Day, Decider, DomainEvent, LongText, Rejected, ShortText
from concord.membership import (
    CHARTER_EVENTS,
    AllianceCreated,
    AllianceEvent,
    ExecutiveSponsor,
    ExecutiveSponsorAppointed,
    PartnerAdded,
    PartnerOrganisation,
    PartnershipAgreementVersionAgreed,
    RelationalExpectationRecorded,
    charter_stream,
)

MAX_PARTNERS = 20
MAX_EXPECTATIONS = 50


stream_id = charter_stream


# --- what callers send ----------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllianceCharter(Body):
    name: ShortText
    purpose: LongText = Field(description="Why the partners ally, in one paragraph")
    # uniqueItems states exact repeats; distinct regardless of case is stated in words.
    goals: list[ShortText] = Field(
        min_length=2,
        max_length=3,
        json_schema_extra={"uniqueItems": True},
        description="The 2 or 3 fundamental goals, distinct regardless of case",
    )
    partners: list[PartnerOrganisation] = Field(
        min_length=2,
        max_length=MAX_PARTNERS,
        json_schema_extra={"uniqueItems": True},
        description="The partner organisations, each `org_id` once",
    )

    @model_validator(mode="after")
    def _distinct(self) -> AllianceCharter:
        if len({g.casefold() for g in self.goals}) != len(self.goals):
            raise ValueError("goals must be distinct")
        if len({p.org_id for p in self.partners}) != len(self.partners):
            raise ValueError("each partner organisation may appear once")
        return self


class RelationalExpectation(Body):
    statement: LongText = Field(description="An agreed norm of behaviour between the partners")


class AgreementVersion(Body):
    summary: ShortText = Field(description="What changed in this version, in a line")
    text: LongText = Field(
        description="What the alliance does and how partners interact (process, not contract)"
    )
    effective_from: Day


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateAlliance:
    alliance_id: UUID
    charter: AllianceCharter
    by: Actor


@dataclass(frozen=True)
class AddPartner:
    partner: PartnerOrganisation
    by: Actor


@dataclass(frozen=True)
class AppointExecutiveSponsor:
    sponsor: ExecutiveSponsor
    by: Actor


@dataclass(frozen=True)
class RecordRelationalExpectation:
    expectation: RelationalExpectation
    by: Actor


@dataclass(frozen=True)
class AgreePartnershipAgreementVersion:
    agreement: AgreementVersion
    by: Actor


Command = (
    CreateAlliance
    | AddPartner
    | AppointExecutiveSponsor
    | RecordRelationalExpectation
    | AgreePartnershipAgreementVersion
)


# --- events: the charter's published language, defined in the kernel (concord.membership) ---

EVENTS = CHARTER_EVENTS


# --- state ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alliance:
    alliance_id: UUID | None = None
    name: str = ""
    purpose: str = ""
    goals: tuple[str, ...] = ()
    partners: tuple[PartnerOrganisation, ...] = ()
    sponsors: tuple[ExecutiveSponsor, ...] = ()
    expectations: tuple[str, ...] = ()
    agreements: tuple[PartnershipAgreementVersionAgreed, ...] = ()

    @property
    def exists(self) -> bool:
        return self.alliance_id is not None

    def has_partner(self, org_id: str) -> bool:
        return any(p.org_id == org_id for p in self.partners)


def decide(state: Alliance, command: Command) -> list[AllianceEvent]:
    by = command.by
    match command:
        case CreateAlliance(alliance_id=alliance_id, charter=charter):
            if state.exists:
                raise Rejected("This alliance already exists")
            if by.org not in {p.org_id for p in charter.partners}:
                raise Rejected(
                    "Your organisation must be one of the partners of an alliance it creates",
                    field_name="partners",
                )
            return [
                AllianceCreated(
                    alliance_id=alliance_id,
                    name=charter.name,
                    purpose=charter.purpose,
                    goals=list(charter.goals),
                    partners=list(charter.partners),
                )
            ]
        case AddPartner(partner=partner):
            if state.has_partner(partner.org_id):
                raise Rejected(f"{partner.org_id} is already a partner", field_name="org_id")
            if len(state.partners) >= MAX_PARTNERS:
                raise Rejected(f"An alliance has at most {MAX_PARTNERS} partners")
            return [PartnerAdded(partner=partner)]
        case AppointExecutiveSponsor(sponsor=sponsor):
            if not state.has_partner(sponsor.org_id):
                raise Rejected(
                    "An executive sponsor must come from a partner organisation",
                    field_name="org_id",
                )
            if sponsor in state.sponsors:
                return []  # already so: nothing happened
            return [ExecutiveSponsorAppointed(sponsor=sponsor)]
        case RecordRelationalExpectation(expectation=expectation):
            if expectation.statement.casefold() in {e.casefold() for e in state.expectations}:
                raise Rejected("This relational expectation is already recorded")
            if len(state.expectations) >= MAX_EXPECTATIONS:
                raise Rejected(f"An alliance records at most {MAX_EXPECTATIONS} expectations")
            return [
                RelationalExpectationRecorded(
                    number=len(state.expectations) + 1,
                    statement=expectation.statement,
                )
            ]
        case AgreePartnershipAgreementVersion(agreement=agreement):
            current = state.agreements[-1] if state.agreements else None
            if current is not None and agreement.effective_from < current.effective_from:
                raise Rejected(
                    f"A new version cannot take effect before version {current.version} "
                    f"({current.effective_from.isoformat()})",
                    field_name="effective_from",
                )
            return [
                PartnershipAgreementVersionAgreed(
                    version=len(state.agreements) + 1,
                    summary=agreement.summary,
                    text=agreement.text,
                    effective_from=agreement.effective_from,
                )
            ]
    raise TypeError(f"not an alliance command: {command!r}")


def evolve(state: Alliance, event: DomainEvent) -> Alliance:
    match event:
        case AllianceCreated():
            return Alliance(
                alliance_id=event.alliance_id,
                name=event.name,
                purpose=event.purpose,
                goals=tuple(event.goals),
                partners=tuple(event.partners),
            )
        case PartnerAdded():
            return replace(state, partners=(*state.partners, event.partner))
        case ExecutiveSponsorAppointed():
            # One executive sponsor per partner: a new appointment replaces the previous one.
            others = tuple(s for s in state.sponsors if s.org_id != event.sponsor.org_id)
            return replace(state, sponsors=(*others, event.sponsor))
        case RelationalExpectationRecorded():
            return replace(state, expectations=(*state.expectations, event.statement))
        case PartnershipAgreementVersionAgreed():
            return replace(state, agreements=(*state.agreements, event))
    return state


alliance: Decider[Alliance, Command] = Decider(
    aggregate="alliance", initial=Alliance, decide=decide, evolve=evolve
)
