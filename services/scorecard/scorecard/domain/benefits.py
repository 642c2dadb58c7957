"""The benefits ledger: what each partner gains (revenue, cost saved, market access,
time-to-market), with its evidence, so the balance of benefits between partners is always
visible. Only shared benefits count in the balance; a private one is its partner's own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from concord.domain import Actor, LongText, OrgId, Rejected
from scorecard.domain.periods import Period
from scorecard.domain.pipeline import Currency, Money
from scorecard.domain.state import Body, Scorecard, ScorecardEvent, Visibility


class BenefitKind(StrEnum):
    revenue = "revenue"
    cost_saved = "cost_saved"
    market_access = "market_access"
    time_to_market = "time_to_market"
    other = "other"


class BenefitEntry(Body):
    partner_org: OrgId = Field(description="The partner that gains")
    kind: BenefitKind
    amount: Money = Field(description="Its value, in the ledger's currency")
    currency: Currency
    period: Period
    evidence: LongText = Field(description="What shows the benefit is real")
    visibility: Visibility = Visibility.shared


@dataclass(frozen=True)
class RecordBenefit:
    entry_id: UUID
    entry: BenefitEntry
    partners: tuple[str, ...]  # the alliance's partners now: the balance is shared among them
    by: Actor


@dataclass(frozen=True)
class WelcomePartner:
    """Governance added a partner organisation to the alliance (Concord's own command)."""

    org_id: str


class BenefitRecorded(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    entry_id: UUID
    partner_org: str
    kind: BenefitKind
    amount: Decimal
    currency: str
    period: str
    evidence: str
    visibility: Visibility
    partners: list[str]  # the alliance's partners when it was recorded


class PartnerWelcomed(ScorecardEvent):
    """A partner organisation joined the alliance after the scorecard was opened: it shares
    in the balance of benefits from now on, with nothing recorded for it yet."""

    org_id: str


BenefitEvent = BenefitRecorded | PartnerWelcomed


def record_benefit(state: Scorecard, command: RecordBenefit) -> list[ScorecardEvent]:
    e, partners = command.entry, command.partners
    if e.partner_org not in partners:
        raise Rejected(f"{e.partner_org} is not a partner", field_name="partner_org")
    if e.currency != state.currency:
        raise Rejected(f"The benefits ledger is kept in {state.currency}", field_name="currency")
    if e.visibility is Visibility.private and e.partner_org != command.by.org:
        raise Rejected(
            "A private benefit can only be your own organisation's", field_name="visibility"
        )
    return [
        BenefitRecorded(
            entry_id=command.entry_id,
            partner_org=e.partner_org,
            kind=e.kind,
            amount=e.amount,
            currency=e.currency,
            period=e.period,
            evidence=e.evidence,
            visibility=e.visibility,
            partners=list(partners),
        )
    ]


def welcome_partner(state: Scorecard, command: WelcomePartner) -> list[ScorecardEvent]:
    if command.org_id in state.partners:
        return []
    return [PartnerWelcomed(org_id=command.org_id)]


def evolve(state: Scorecard, event: BenefitEvent) -> Scorecard:
    if isinstance(event, PartnerWelcomed):
        return replace(state, partners=_joined(state.partners, [event.org_id]))
    benefits = dict(state.shared_benefits)
    if event.visibility is Visibility.shared:
        benefits[event.partner_org] = benefits.get(event.partner_org, Decimal(0)) + event.amount
    return replace(
        state, partners=_joined(state.partners, event.partners), shared_benefits=benefits
    )


def _joined(partners: tuple[str, ...], named: Iterable[str]) -> tuple[str, ...]:
    """The partners the balance is shared among: partners join an alliance, none leaves, so
    an event naming fewer (written from a list that had not caught up) removes nobody."""
    return tuple(dict.fromkeys((*partners, *named)))
