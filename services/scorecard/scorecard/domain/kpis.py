"""Defining KPIs: each in one of the five dimensions, leading or lagging, owned by the
partner organisation that alone keeps its numbers (`kpi_numbers`), shared or private to that
owner, and kept by hand or fed from the owner's CRM (`ingestion`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import ClassVar
from uuid import UUID

from pydantic import Field, model_validator

from concord.domain import Actor, LongText, OrgId, Rejected, ShortText
from scorecard.domain.kpi_numbers import actual_events
from scorecard.domain.periods import Cadence, period_of
from scorecard.domain.pipeline import Currency, Metric
from scorecard.domain.rules import GoodDirection
from scorecard.domain.state import (
    Body,
    Dimension,
    Kpi,
    KpiEvent,
    KpiKind,
    Scorecard,
    ScorecardEvent,
    Visibility,
)

MAX_KPIS = 100


class KpiDefinition(Body):
    """A KPI of the scorecard. One fed from the CRM measures its metric as the CRM reports
    it: a KPI fed by an amount of money (`pipeline_value`, `closed_won_revenue`) needs the
    `currency` its CRM reports in, and one fed by a count (`proposals_submitted`,
    `key_accounts_agreed`) has no `currency`."""

    name: ShortText
    description: LongText | None = None
    dimension: Dimension
    kind: KpiKind
    unit: ShortText = Field(description="What a value counts: EUR, deals, %, days...")
    currency: Currency | None = Field(default=None, description="For amounts of money")
    good_direction: GoodDirection = GoodDirection.higher
    owner_org: OrgId = Field(description="The partner organisation that keeps its numbers")
    visibility: Visibility = Visibility.shared
    cadence: Cadence = Cadence.month
    headline: bool = Field(
        default=False, description="One of the scorecard's overall goals, shown at its head"
    )
    feed: Metric | None = Field(
        default=None,
        description="Fed from the owner organisation's CRM instead of by hand",
    )

    @model_validator(mode="after")
    def _feed_fits(self) -> KpiDefinition:
        if self.feed is not None and self.feed.is_money and self.currency is None:
            raise ValueError(f"a KPI fed by {self.feed} needs the currency its CRM reports in")
        if self.feed is not None and not self.feed.is_money and self.currency is not None:
            raise ValueError(f"a KPI fed by {self.feed} counts, it has no currency")
        return self


@dataclass(frozen=True)
class DefineKpi:
    kpi_id: UUID
    definition: KpiDefinition
    partners: tuple[str, ...]  # the alliance's partners now: a KPI is owned by one of them
    by: Actor


class KpiDefined(KpiEvent):
    schema_version: ClassVar[int] = 2
    name: str
    description: str | None
    dimension: Dimension
    kind: KpiKind
    unit: str
    currency: str | None
    good_direction: GoodDirection
    cadence: Cadence
    headline: bool
    feed: Metric | None


def define_kpi(state: Scorecard, command: DefineKpi) -> list[ScorecardEvent]:
    d = command.definition
    _check_definition(state, d, command.partners, command.by)
    defined = KpiDefined(
        kpi_id=command.kpi_id,
        owner_org=d.owner_org,
        visibility=d.visibility,
        name=d.name,
        description=d.description,
        dimension=d.dimension,
        kind=d.kind,
        unit=d.unit,
        currency=d.currency,
        good_direction=d.good_direction,
        cadence=d.cadence,
        headline=d.headline,
        feed=d.feed,
    )
    return [defined, *_reported_before(evolve(state, defined), kpi_of(defined))]


def _check_definition(
    state: Scorecard, d: KpiDefinition, partners: tuple[str, ...], by: Actor
) -> None:
    _check_allowance(state, d)
    if d.owner_org not in partners:
        raise Rejected(f"{d.owner_org} is not a partner", field_name="owner_org")
    if d.visibility is Visibility.private and d.owner_org != by.org:
        raise Rejected("A private KPI can only be your own organisation's", field_name="owner_org")
    if d.feed is not None and d.owner_org != by.org:
        raise Rejected(
            "A KPI fed by a CRM belongs to the organisation whose CRM feeds it",
            field_name="owner_org",
        )
    # Only among the KPIs the caller can see, so a refusal reveals nothing private.
    if any(
        k.name.casefold() == d.name.casefold() and k.visible_to(by.org) for k in state.kpis.values()
    ):
        raise Rejected(f"There is already a KPI named {d.name!r}", field_name="name")
    if d.feed is not None and state.fed_kpi(d.owner_org, d.feed) is not None:
        raise Rejected(f"Another KPI is already fed by {d.feed}", field_name="feed")


def _check_allowance(state: Scorecard, d: KpiDefinition) -> None:
    """At most MAX_KPIS shared KPIs, and MAX_KPIS private ones per partner: what one partner
    keeps to itself takes nothing from what the others may define (ADR 0009)."""
    if d.visibility is Visibility.shared:
        shared = sum(k.visibility is Visibility.shared for k in state.kpis.values())
        if shared >= MAX_KPIS:
            raise Rejected(f"A scorecard has at most {MAX_KPIS} shared KPIs")
        return
    own = sum(
        k.visibility is Visibility.private and k.owner_org == d.owner_org
        for k in state.kpis.values()
    )
    if own >= MAX_KPIS:
        raise Rejected(f"A partner keeps at most {MAX_KPIS} private KPIs on a scorecard")


def _reported_before(with_kpi: Scorecard, kpi: Kpi) -> list[ScorecardEvent]:
    """What the CRM reported before a fed KPI existed counts from the start."""
    if kpi.feed is None:
        return []
    periods = sorted(
        {
            period_of(date.fromisoformat(f"{month}-01"), kpi.cadence)
            for (org, metric, month, _) in with_kpi.pipeline
            if org == kpi.owner_org and metric is kpi.feed
        }
    )
    events: list[ScorecardEvent] = []
    for period in periods:
        total = with_kpi.metric_total(kpi, period)
        if total:
            events += actual_events(with_kpi, kpi, period, total, "crm", None)
    return events


def kpi_of(event: KpiDefined) -> Kpi:
    return Kpi(
        kpi_id=event.kpi_id,
        name=event.name,
        dimension=event.dimension,
        kind=event.kind,
        unit=event.unit,
        currency=event.currency,
        good_direction=event.good_direction,
        owner_org=event.owner_org,
        visibility=event.visibility,
        cadence=event.cadence,
        headline=event.headline,
        feed=event.feed,
    )


def evolve(state: Scorecard, event: KpiDefined) -> Scorecard:
    return replace(state, kpis={**state.kpis, event.kpi_id: kpi_of(event)})
