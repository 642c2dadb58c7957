"""The alliance scorecard: the shared "North Star" both partners review every month.

One scorecard per alliance, one stream: its KPIs in the five balanced dimensions with targets
and actuals per period, the strategy map of objectives, the initiatives, the benefits ledger,
and the pipeline its partners' CRMs report. Pure: `decide(state, command) -> events` and
`evolve(state, event) -> state`; `ingest` is `decide` for a CRM batch, with a verdict per item.

Every decision is followed by its judgement (`_judge`): the status of each KPI period it
touched and the balance of benefits are compared before and after, and a crossing is an event
(`KpiWentOffTrack`, `KpiRecovered`, `BenefitImbalanceDetected`, `BenefitBalanceRestored`).

Some events set timers (`timers_for`): a target sets the time its period's actual is due, and
if the actual is still missing then, Concord's own `NoteMissingActual` reports it. Concord
also welcomes a partner governance adds (`WelcomePartner`), which can tip the balance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

import immutables
from pydantic import BaseModel, ConfigDict, Field, model_validator

from concord.domain import (
    Actor,
    CancelTimer,
    Decider,
    DecimalNumber,
    DomainEvent,
    Forbidden,
    LongText,
    NotFound,
    OrgId,
    Rejected,
    ScheduleTimer,
    ShortText,
    TimerChange,
)
from concord.events import EventRegistry
from scorecard.domain.periods import (
    Cadence,
    Period,
    cadence_of,
    first_instant_after,
    months_in,
    period_of,
)
from scorecard.domain.pipeline import (
    Currency,
    Metric,
    Money,
    OpportunityClosedLostItem,
    OpportunityClosedWonItem,
    OpportunityCreatedItem,
    OpportunityStageChangedItem,
    PipelineItem,
    ProposalSubmittedItem,
    month_of,
)
from scorecard.domain.rules import (
    GoodDirection,
    Status,
    StatusThresholds,
    imbalance_index,
    shares,
    status_of,
)

MAX_KPIS = 100
MAX_OBJECTIVES = 100
MAX_INITIATIVES = 100

# A KPI value: an amount, a count, a percentage or a number of days.
Value = Annotated[Decimal, DecimalNumber(digits=13, places=4, signed=True)]


def stream_id(alliance_id: UUID | str) -> str:
    return f"scorecard-{alliance_id}"


class Dimension(StrEnum):
    commercial = "commercial"
    technical = "technical"
    strategic = "strategic"
    cultural = "cultural"
    operational = "operational"


class KpiKind(StrEnum):
    leading = "leading"
    lagging = "lagging"


class Visibility(StrEnum):
    shared = "shared"  # every partner sees it
    private = "private"  # only the owner organisation sees it


class InitiativeStatus(StrEnum):
    planned = "planned"
    in_progress = "in_progress"
    at_risk = "at_risk"
    blocked = "blocked"
    done = "done"


class BenefitKind(StrEnum):
    revenue = "revenue"
    cost_saved = "cost_saved"
    market_access = "market_access"
    time_to_market = "time_to_market"
    other = "other"


# --- what callers send ----------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScorecardSetup(Body):
    currency: Currency = Field(description="The currency the benefits ledger is kept in")
    thresholds: StatusThresholds = StatusThresholds()


class KpiDefinition(Body):
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


class KpiTarget(Body):
    period: Period
    target: Value


class KpiActual(Body):
    period: Period
    actual: Value
    note: ShortText | None = Field(default=None, description="Where the number comes from")


class ObjectiveDefinition(Body):
    name: ShortText
    description: LongText | None = None
    dimension: Dimension
    kpi_ids: list[UUID] = Field(
        default_factory=list, max_length=20, description="The KPIs that measure it"
    )

    @model_validator(mode="after")
    def _distinct(self) -> ObjectiveDefinition:
        if len(set(self.kpi_ids)) != len(self.kpi_ids):
            raise ValueError("each KPI may be named once")
        return self


class ObjectiveLink(Body):
    cause_id: UUID = Field(description="The objective that drives...")
    effect_id: UUID = Field(description="...this one")


class InitiativePlan(Body):
    name: ShortText
    description: LongText | None = None
    dimension: Dimension
    owner_org: OrgId
    owner_name: ShortText = Field(description="The person accountable for it")
    leading_indicator: ShortText = Field(description="What shows early that it works")
    due_date: date


class InitiativeProgress(Body):
    completion: int = Field(ge=0, le=100, description="Percent complete")
    status: InitiativeStatus
    as_of: date
    note: ShortText | None = None

    @model_validator(mode="after")
    def _done_is_complete(self) -> InitiativeProgress:
        if self.status is InitiativeStatus.done and self.completion != 100:
            raise ValueError("a done initiative is 100% complete")
        return self


class BenefitEntry(Body):
    partner_org: OrgId = Field(description="The partner that gains")
    kind: BenefitKind
    amount: Money = Field(description="Its value, in the ledger's currency")
    currency: Currency
    period: Period
    evidence: LongText = Field(description="What shows the benefit is real")
    visibility: Visibility = Visibility.shared


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenScorecard:
    alliance_id: UUID
    setup: ScorecardSetup
    partners: tuple[str, ...]  # the alliance's partner organisations, as governance says
    by: Actor


@dataclass(frozen=True)
class ChangeThresholds:
    thresholds: StatusThresholds
    by: Actor


@dataclass(frozen=True)
class DefineKpi:
    kpi_id: UUID
    definition: KpiDefinition
    partners: tuple[str, ...]  # the alliance's partners now: a KPI is owned by one of them
    by: Actor


@dataclass(frozen=True)
class SetKpiTarget:
    kpi_id: UUID
    target: KpiTarget
    by: Actor


@dataclass(frozen=True)
class RecordKpiActual:
    kpi_id: UUID
    actual: KpiActual
    by: Actor


@dataclass(frozen=True)
class DefineObjective:
    objective_id: UUID
    definition: ObjectiveDefinition
    by: Actor


@dataclass(frozen=True)
class LinkObjectives:
    link: ObjectiveLink
    by: Actor


@dataclass(frozen=True)
class LaunchInitiative:
    initiative_id: UUID
    plan: InitiativePlan
    partners: tuple[str, ...]  # the alliance's partners now: one of them owns it
    by: Actor


@dataclass(frozen=True)
class UpdateInitiativeProgress:
    initiative_id: UUID
    progress: InitiativeProgress
    by: Actor


@dataclass(frozen=True)
class RecordBenefit:
    entry_id: UUID
    entry: BenefitEntry
    partners: tuple[str, ...]  # the alliance's partners now: the balance is shared among them
    by: Actor


@dataclass(frozen=True)
class IngestPipeline:
    items: tuple[PipelineItem, ...]
    source_org: str  # whose CRM sent them (its integration credential says)
    by: Actor


# Concord's own commands: a timer or a reaction runs them, nobody asks, so they have no `by`
# and find nothing to do (rather than an error) when there is no scorecard.


@dataclass(frozen=True)
class NoteMissingActual:
    """A KPI period's actual is due (the `kpi_actual_due` timer fired)."""

    kpi_id: UUID
    period: str


@dataclass(frozen=True)
class WelcomePartner:
    """Governance added a partner organisation to the alliance."""

    org_id: str


# Asked for by a partner organisation's member (or its CRM): `by` says who, and its rules.
PartnerCommand = (
    OpenScorecard
    | ChangeThresholds
    | DefineKpi
    | SetKpiTarget
    | RecordKpiActual
    | DefineObjective
    | LinkObjectives
    | LaunchInitiative
    | UpdateInitiativeProgress
    | RecordBenefit
    | IngestPipeline
)
ConcordCommand = NoteMissingActual | WelcomePartner
Command = PartnerCommand | ConcordCommand


# --- events ---------------------------------------------------------------------------------


class ScorecardEvent(DomainEvent):
    aggregate: ClassVar[str] = "scorecard"


class ScorecardOpened(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    alliance_id: UUID
    partners: list[str]  # the alliance's partners at opening: the balance is shared among them
    currency: str
    thresholds: StatusThresholds


class ScorecardThresholdsChanged(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    thresholds: StatusThresholds
    # None on events recorded before v2, which did not say.
    previous_thresholds: StatusThresholds | None = None


class KpiEvent(ScorecardEvent):
    """About one KPI. Carries who owns it and who may see it, so every consumer (a read
    model, a notification) can keep a private KPI within its organisation."""

    kpi_id: UUID
    owner_org: str
    visibility: Visibility


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


class KpiTargetSet(KpiEvent):
    schema_version: ClassVar[int] = 2
    period: str
    target: Decimal
    previous_target: Decimal | None


class KpiActualRecorded(KpiEvent):
    """The first actual for a period: by hand, or derived from the CRM (`source`)."""

    schema_version: ClassVar[int] = 2
    period: str
    actual: Decimal
    source: str  # "manual" or "crm"
    note: str | None


class KpiActualCorrected(KpiEvent):
    """A later value for a period that had one: late data or a correction. The previous
    value stays in the KPI's history."""

    schema_version: ClassVar[int] = 2
    period: str
    actual: Decimal
    previous_actual: Decimal
    source: str
    note: str | None


class KpiWentOffTrack(KpiEvent):
    period: str
    target: Decimal
    actual: Decimal
    previous_status: Status


class KpiRecovered(KpiEvent):
    period: str
    target: Decimal | None
    actual: Decimal | None
    status: Status


class KpiActualMissing(KpiEvent):
    """A KPI period with a target has no actual by the time it was due (the period's end
    plus the scorecard's `actual_grace_days`): reported once, for the owner organisation to
    catch up. The actual may still be recorded later. For a CRM-fed KPI it means the CRM
    reported nothing for the period."""

    name: str
    period: str
    target: Decimal
    due: datetime


class ObjectiveDefined(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    objective_id: UUID
    name: str
    description: str | None
    dimension: Dimension
    kpi_ids: list[UUID]


class ObjectivesLinked(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    cause_id: UUID
    effect_id: UUID


class InitiativeLaunched(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    initiative_id: UUID
    name: str
    description: str | None
    dimension: Dimension
    owner_org: str
    owner_name: str
    leading_indicator: str
    due_date: date


class InitiativeProgressUpdated(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    initiative_id: UUID
    completion: int
    status: InitiativeStatus
    as_of: date
    note: str | None
    previous_completion: int


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


class BenefitImbalanceDetected(ScorecardEvent):
    imbalance_index: Decimal
    threshold: Decimal
    shares: dict[str, Decimal]
    most_favoured_org: str


class BenefitBalanceRestored(ScorecardEvent):
    imbalance_index: Decimal
    threshold: Decimal
    shares: dict[str, Decimal]


class PartnerWelcomed(ScorecardEvent):
    """A partner organisation joined the alliance after the scorecard was opened: it shares
    in the balance of benefits from now on, with nothing recorded for it yet."""

    org_id: str


class PipelineEvent(ScorecardEvent):
    """A CRM's pipeline event, as accepted: `crm_event_id` is the CRM's own id."""

    crm_event_id: str
    source_org: str
    occurred_at: datetime


class OpportunityCreated(PipelineEvent):
    opportunity_id: str
    account: str
    amount: Decimal
    currency: str
    stage: str
    close_date: date


class OpportunityStageChanged(PipelineEvent):
    opportunity_id: str
    stage: str
    amount: Decimal | None
    previous_amount: Decimal
    close_date: date | None


class OpportunityWon(PipelineEvent):
    opportunity_id: str
    account: str | None
    amount: Decimal
    currency: str
    close_date: date


class OpportunityLost(PipelineEvent):
    opportunity_id: str
    close_date: date
    reason: str | None


class ProposalSubmitted(PipelineEvent):
    account: str
    opportunity_id: str | None


class KeyAccountAgreed(PipelineEvent):
    account: str


EVENTS: tuple[type[ScorecardEvent], ...] = (
    ScorecardOpened,
    ScorecardThresholdsChanged,
    KpiDefined,
    KpiTargetSet,
    KpiActualRecorded,
    KpiActualCorrected,
    KpiWentOffTrack,
    KpiRecovered,
    KpiActualMissing,
    ObjectiveDefined,
    ObjectivesLinked,
    InitiativeLaunched,
    InitiativeProgressUpdated,
    BenefitRecorded,
    BenefitImbalanceDetected,
    BenefitBalanceRestored,
    PartnerWelcomed,
    OpportunityCreated,
    OpportunityStageChanged,
    OpportunityWon,
    OpportunityLost,
    ProposalSubmitted,
    KeyAccountAgreed,
)
# What scorecard's events are called on the wire, and how their old versions read today.
EVENT_REGISTRY = EventRegistry("scorecard")
EVENT_REGISTRY.register(*EVENTS)
# Version 1 named who did it in the payload; the envelope says so now.
for _event, _org, _sub in (
    (ScorecardOpened, "opened_by_org", "opened_by"),
    (ScorecardThresholdsChanged, "changed_by_org", "changed_by"),
    (KpiDefined, "defined_by_org", "defined_by"),
    (KpiTargetSet, "set_by_org", "set_by"),
    (KpiActualRecorded, "recorded_by_org", "recorded_by"),
    (KpiActualCorrected, "corrected_by_org", "corrected_by"),
    (ObjectiveDefined, "defined_by_org", "defined_by"),
    (ObjectivesLinked, "linked_by_org", "linked_by"),
    (InitiativeLaunched, "launched_by_org", "launched_by"),
    (InitiativeProgressUpdated, "updated_by_org", "updated_by"),
    (BenefitRecorded, "recorded_by_org", "recorded_by"),
):
    EVENT_REGISTRY.actor_moved(_event, 1, org=_org, sub=_sub)


# --- state ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    kpi_id: UUID
    name: str
    dimension: Dimension
    kind: KpiKind
    unit: str
    currency: str | None
    good_direction: GoodDirection
    owner_org: str
    visibility: Visibility
    cadence: Cadence
    headline: bool
    feed: Metric | None

    def visible_to(self, org: str) -> bool:
        return self.visibility is Visibility.shared or self.owner_org == org


@dataclass(frozen=True)
class Numbers:
    target: Decimal | None = None
    actual: Decimal | None = None
    reported_missing: bool = False  # the actual was not there when it was due

    @property
    def awaits_actual(self) -> bool:
        """A target, no actual yet, and not yet reported missing: its actual is still due."""
        return self.target is not None and self.actual is None and not self.reported_missing


@dataclass(frozen=True)
class Objective:
    objective_id: UUID
    name: str
    kpi_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class Initiative:
    initiative_id: UUID
    name: str
    owner_org: str
    completion: int = 0
    as_of: date | None = None


@dataclass(frozen=True)
class Opportunity:
    currency: str
    created_month: str | None = None  # None when the CRM only reported its close
    amount: Decimal = Decimal(0)  # counted in the created month's pipeline value
    won_month: str | None = None
    won_amount: Decimal = Decimal(0)


# (organisation, metric, month, currency or None for counts) -> total
PipelineKey = tuple[str, Metric, str, str | None]


@dataclass(frozen=True)
class Scorecard:
    alliance_id: UUID | None = None
    partners: tuple[str, ...] = ()
    currency: str = ""
    thresholds: StatusThresholds = field(default_factory=StatusThresholds)
    kpis: Mapping[UUID, Kpi] = field(default_factory=dict)
    numbers: Mapping[tuple[UUID, str], Numbers] = field(default_factory=dict)
    objectives: Mapping[UUID, Objective] = field(default_factory=dict)
    links: frozenset[tuple[UUID, UUID]] = frozenset()
    initiatives: Mapping[UUID, Initiative] = field(default_factory=dict)
    shared_benefits: Mapping[str, Decimal] = field(default_factory=dict)  # per partner
    imbalanced: bool = False
    # A persistent map: each pipeline event adds one opportunity without copying them all.
    opportunities: immutables.Map[tuple[str, str], Opportunity] = field(
        default_factory=immutables.Map
    )
    pipeline: Mapping[PipelineKey, Decimal] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.alliance_id is not None

    def kpi_for(self, kpi_id: UUID, org: str) -> Kpi:
        kpi = self.kpis.get(kpi_id)
        if kpi is None or not kpi.visible_to(org):
            raise NotFound("No such KPI on this scorecard")
        return kpi

    def status(self, kpi_id: UUID, period: str) -> Status:
        kpi = self.kpis.get(kpi_id)
        if kpi is None:
            return Status.no_target
        numbers = self.numbers.get((kpi_id, period), Numbers())
        return status_of(numbers.target, numbers.actual, kpi.good_direction, self.thresholds)

    def fed_kpi(self, org: str, metric: Metric) -> Kpi | None:
        return next(
            (k for k in self.kpis.values() if k.feed is metric and k.owner_org == org), None
        )

    def metric_total(self, kpi: Kpi, period: str) -> Decimal:
        assert kpi.feed is not None
        return sum(
            (
                self.pipeline.get((kpi.owner_org, kpi.feed, month, kpi.currency), Decimal(0))
                for month in months_in(period)
            ),
            Decimal(0),
        )

    def effect_reaches(self, start: UUID, goal: UUID) -> bool:
        """Whether `goal` is reachable from `start` along cause -> effect links."""
        seen, frontier = {start}, [start]
        while frontier:
            node = frontier.pop()
            for cause, effect in self.links:
                if cause == node and effect not in seen:
                    if effect == goal:
                        return True
                    seen.add(effect)
                    frontier.append(effect)
        return False


# --- decide ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemVerdict:
    """What became of one item of a CRM batch: accepted, or rejected and why."""

    accepted: bool
    reason: str | None = None


@dataclass(frozen=True)
class Ingested:
    events: list[ScorecardEvent]
    verdicts: list[ItemVerdict]
    state: Scorecard  # after the events


def decide(state: Scorecard, command: Command) -> list[ScorecardEvent]:
    if isinstance(command, OpenScorecard):
        if state.exists:
            raise Rejected("This alliance's scorecard is already open")
        return [
            ScorecardOpened(
                alliance_id=command.alliance_id,
                partners=list(command.partners),
                currency=command.setup.currency,
                thresholds=command.setup.thresholds,
            )
        ]
    if isinstance(command, ConcordCommand):
        return _judge(state, _concord_decides(state, command)) if state.exists else []
    if not state.exists:
        raise NotFound("This alliance has no scorecard yet")
    if isinstance(command, IngestPipeline):
        return ingest(state, command).events
    return _judge(state, _decide(state, command))


def _concord_decides(state: Scorecard, command: ConcordCommand) -> list[ScorecardEvent]:
    match command:
        case NoteMissingActual(kpi_id=kpi_id, period=period):
            kpi = state.kpis.get(kpi_id)
            numbers = state.numbers.get((kpi_id, period), Numbers())
            if kpi is None or not numbers.awaits_actual:
                return []
            assert numbers.target is not None
            return [
                KpiActualMissing(
                    kpi_id=kpi_id,
                    owner_org=kpi.owner_org,
                    visibility=kpi.visibility,
                    name=kpi.name,
                    period=period,
                    target=numbers.target,
                    due=actual_due(period, state.thresholds),
                )
            ]
        case WelcomePartner(org_id=org_id):
            if org_id in state.partners:
                return []
            return [PartnerWelcomed(org_id=org_id)]


def _decide(state: Scorecard, command: PartnerCommand) -> list[ScorecardEvent]:
    by = command.by
    match command:
        case ChangeThresholds(thresholds=thresholds):
            if thresholds == state.thresholds:
                return []
            return [
                ScorecardThresholdsChanged(
                    thresholds=thresholds, previous_thresholds=state.thresholds
                )
            ]
        case DefineKpi(kpi_id=kpi_id, definition=d, partners=partners):
            return _define_kpi(state, kpi_id, d, partners, by)
        case SetKpiTarget(kpi_id=kpi_id, target=t):
            kpi = _keeper(state, kpi_id, by, t.period)
            previous = state.numbers.get((kpi_id, t.period), Numbers()).target
            if previous == t.target:
                return []
            return [
                KpiTargetSet(
                    kpi_id=kpi_id,
                    owner_org=kpi.owner_org,
                    visibility=kpi.visibility,
                    period=t.period,
                    target=t.target,
                    previous_target=previous,
                )
            ]
        case RecordKpiActual(kpi_id=kpi_id, actual=a):
            kpi = _keeper(state, kpi_id, by, a.period)
            if kpi.feed is not None:
                raise Rejected(
                    f"This KPI is fed by {kpi.owner_org}'s CRM ({kpi.feed}): correct the "
                    "numbers there and the CRM's next events correct them here"
                )
            return _actual(state, kpi, a.period, a.actual, "manual", a.note)
        case DefineObjective(objective_id=objective_id, definition=d):
            if len(state.objectives) >= MAX_OBJECTIVES:
                raise Rejected(f"A scorecard has at most {MAX_OBJECTIVES} objectives")
            if any(o.name.casefold() == d.name.casefold() for o in state.objectives.values()):
                raise Rejected(f"There is already an objective named {d.name!r}", field_name="name")
            for kpi_id in d.kpi_ids:
                measure = state.kpis.get(kpi_id)
                if measure is None or not measure.visible_to(by.org):
                    raise Rejected(f"No KPI {kpi_id} on this scorecard", field_name="kpi_ids")
            return [
                ObjectiveDefined(
                    objective_id=objective_id,
                    name=d.name,
                    description=d.description,
                    dimension=d.dimension,
                    kpi_ids=list(d.kpi_ids),
                )
            ]
        case LinkObjectives(link=link):
            for name, objective_id in (("cause_id", link.cause_id), ("effect_id", link.effect_id)):
                if objective_id not in state.objectives:
                    raise Rejected(
                        f"No objective {objective_id} on this scorecard", field_name=name
                    )
            if link.cause_id == link.effect_id:
                raise Rejected("An objective cannot drive itself", field_name="effect_id")
            if (link.cause_id, link.effect_id) in state.links:
                return []
            if state.effect_reaches(link.effect_id, link.cause_id):
                raise Rejected(
                    "That link would close a loop: the strategy map runs from causes to effects",
                    field_name="effect_id",
                )
            return [ObjectivesLinked(cause_id=link.cause_id, effect_id=link.effect_id)]
        case LaunchInitiative(initiative_id=initiative_id, plan=p, partners=partners):
            if len(state.initiatives) >= MAX_INITIATIVES:
                raise Rejected(f"A scorecard has at most {MAX_INITIATIVES} initiatives")
            if p.owner_org not in partners:
                raise Rejected(f"{p.owner_org} is not a partner", field_name="owner_org")
            if any(i.name.casefold() == p.name.casefold() for i in state.initiatives.values()):
                raise Rejected(
                    f"There is already an initiative named {p.name!r}", field_name="name"
                )
            return [
                InitiativeLaunched(
                    initiative_id=initiative_id,
                    name=p.name,
                    description=p.description,
                    dimension=p.dimension,
                    owner_org=p.owner_org,
                    owner_name=p.owner_name,
                    leading_indicator=p.leading_indicator,
                    due_date=p.due_date,
                )
            ]
        case UpdateInitiativeProgress(initiative_id=initiative_id, progress=p):
            initiative = state.initiatives.get(initiative_id)
            if initiative is None:
                raise NotFound("No such initiative on this scorecard")
            if initiative.owner_org != by.org:
                raise Forbidden(f"Only {initiative.owner_org}, which owns it, reports its progress")
            if initiative.as_of is not None and p.as_of < initiative.as_of:
                raise Rejected(
                    f"Progress is already reported as of {initiative.as_of.isoformat()}",
                    field_name="as_of",
                )
            return [
                InitiativeProgressUpdated(
                    initiative_id=initiative_id,
                    completion=p.completion,
                    status=p.status,
                    as_of=p.as_of,
                    note=p.note,
                    previous_completion=initiative.completion,
                )
            ]
        case RecordBenefit(entry_id=entry_id, entry=e, partners=partners):
            if e.partner_org not in partners:
                raise Rejected(f"{e.partner_org} is not a partner", field_name="partner_org")
            if e.currency != state.currency:
                raise Rejected(
                    f"The benefits ledger is kept in {state.currency}", field_name="currency"
                )
            if e.visibility is Visibility.private and e.partner_org != by.org:
                raise Rejected(
                    "A private benefit can only be your own organisation's",
                    field_name="visibility",
                )
            return [
                BenefitRecorded(
                    entry_id=entry_id,
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
    raise TypeError(f"not a scorecard command: {command!r}")


def _define_kpi(
    state: Scorecard, kpi_id: UUID, d: KpiDefinition, partners: tuple[str, ...], by: Actor
) -> list[ScorecardEvent]:
    if len(state.kpis) >= MAX_KPIS:
        raise Rejected(f"A scorecard has at most {MAX_KPIS} KPIs")
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
    defined = KpiDefined(
        kpi_id=kpi_id,
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
    events: list[ScorecardEvent] = [defined]
    if d.feed is not None:
        # What the CRM reported before the KPI existed counts from the start.
        kpi = _kpi_of(defined)
        periods = sorted(
            {
                period_of(date.fromisoformat(f"{month}-01"), d.cadence)
                for (org, metric, month, _) in state.pipeline
                if org == d.owner_org and metric is d.feed
            }
        )
        with_kpi = evolve(state, defined)
        for period in periods:
            total = with_kpi.metric_total(kpi, period)
            if total:
                events += _actual(with_kpi, kpi, period, total, "crm", None)
    return events


def _keeper(state: Scorecard, kpi_id: UUID, by: Actor, period: str) -> Kpi:
    """The KPI, if the caller's organisation keeps its numbers and the period fits it."""
    kpi = state.kpi_for(kpi_id, by.org)
    if kpi.owner_org != by.org:
        raise Forbidden(f"Only {kpi.owner_org}, which owns this KPI, keeps its numbers")
    if cadence_of(period) is not kpi.cadence:
        raise Rejected(
            f"This KPI is measured per {kpi.cadence.value}: name a "
            + ("month like 2026-11" if kpi.cadence is Cadence.month else "quarter like 2026-Q4"),
            field_name="period",
        )
    return kpi


def _actual(
    state: Scorecard,
    kpi: Kpi,
    period: str,
    value: Decimal,
    source: str,
    note: str | None,
) -> list[ScorecardEvent]:
    previous = state.numbers.get((kpi.kpi_id, period), Numbers()).actual
    if previous == value:
        return []
    common = {
        "kpi_id": kpi.kpi_id,
        "owner_org": kpi.owner_org,
        "visibility": kpi.visibility,
        "period": period,
        "actual": value,
        "source": source,
        "note": note,
    }
    if previous is None:
        return [KpiActualRecorded(**common)]
    return [KpiActualCorrected(**common, previous_actual=previous)]


def _judge(state: Scorecard, events: list[ScorecardEvent]) -> list[ScorecardEvent]:
    """The decided events, followed by the status crossings and balance crossings they cause."""
    if not events:
        return events
    after = scorecard.fold(events, state)
    rethink_all = any(isinstance(e, ScorecardThresholdsChanged) for e in events)
    touched: Iterable[tuple[UUID, str]] = (
        sorted(after.numbers, key=lambda pair: (str(pair[0]), pair[1]))
        if rethink_all
        else dict.fromkeys(
            (e.kpi_id, e.period)
            for e in events
            if isinstance(e, KpiTargetSet | KpiActualRecorded | KpiActualCorrected)
        )
    )
    judged: list[ScorecardEvent] = []
    for kpi_id, period in touched:
        kpi = after.kpis[kpi_id]
        before_status, now = state.status(kpi_id, period), after.status(kpi_id, period)
        numbers = after.numbers.get((kpi_id, period), Numbers())
        ids = {"kpi_id": kpi_id, "owner_org": kpi.owner_org, "visibility": kpi.visibility}
        if now is Status.off_track and before_status is not Status.off_track:
            assert numbers.target is not None and numbers.actual is not None
            judged.append(
                KpiWentOffTrack(
                    **ids,
                    period=period,
                    target=numbers.target,
                    actual=numbers.actual,
                    previous_status=before_status,
                )
            )
        elif before_status is Status.off_track and now is not Status.off_track:
            judged.append(
                KpiRecovered(
                    **ids, period=period, target=numbers.target, actual=numbers.actual, status=now
                )
            )
    index = imbalance_index(after.shared_benefits, after.partners)
    imbalanced = index >= after.thresholds.imbalance_threshold
    if imbalanced != state.imbalanced:
        split = shares(after.shared_benefits, after.partners)
        if imbalanced:
            judged.append(
                BenefitImbalanceDetected(
                    imbalance_index=index,
                    threshold=after.thresholds.imbalance_threshold,
                    shares=split,
                    most_favoured_org=max(after.partners, key=lambda p: (split[p], p)),
                )
            )
        else:
            judged.append(
                BenefitBalanceRestored(
                    imbalance_index=index,
                    threshold=after.thresholds.imbalance_threshold,
                    shares=split,
                )
            )
    return events + judged


# --- CRM pipeline ---------------------------------------------------------------------------


def ingest(state: Scorecard, command: IngestPipeline) -> Ingested:
    """A CRM batch: each item accepted as a pipeline event or rejected with its reason (one
    bad item never sinks the others), then the KPIs the batch moved, with their judgement."""
    if not state.exists:
        raise NotFound("This alliance has no scorecard yet")
    org = command.source_org
    working = state
    accepted: list[ScorecardEvent] = []
    verdicts: list[ItemVerdict] = []
    for item in command.items:
        event_or_reason = _pipeline_event(working, org, item)
        if isinstance(event_or_reason, str):
            verdicts.append(ItemVerdict(False, event_or_reason))
            continue
        accepted.append(event_or_reason)
        working = evolve(working, event_or_reason)
        verdicts.append(ItemVerdict(True))
    moved: set[tuple[UUID, str]] = set()
    for key, total in working.pipeline.items():
        key_org, metric, month, _ = key
        kpi = working.fed_kpi(key_org, metric)
        if kpi is not None and state.pipeline.get(key) != total:
            moved.add((kpi.kpi_id, period_of(date.fromisoformat(f"{month}-01"), kpi.cadence)))
    actuals: list[ScorecardEvent] = []
    for kpi_id, period in sorted(moved, key=lambda pair: (str(pair[0]), pair[1])):
        kpi = working.kpis[kpi_id]
        actuals += _actual(working, kpi, period, working.metric_total(kpi, period), "crm", None)
    judged = _judge(working, actuals)
    return Ingested(accepted + judged, verdicts, scorecard.fold(judged, working))


def _pipeline_event(state: Scorecard, org: str, item: PipelineItem) -> PipelineEvent | str:
    """The event an item becomes, or why it cannot."""
    common = {"crm_event_id": item.id, "source_org": org, "occurred_at": item.occurred_at}
    opportunity_id = getattr(item, "opportunity_id", None)
    known = state.opportunities.get((org, opportunity_id)) if opportunity_id else None
    match item:
        case OpportunityCreatedItem():
            if known is not None and known.created_month is not None:
                return f"Opportunity {item.opportunity_id} was already created"
            if reason := _currency_misfit(state, org, Metric.pipeline_value, item.currency, known):
                return reason
            return OpportunityCreated(
                **common,
                opportunity_id=item.opportunity_id,
                account=item.account,
                amount=item.amount,
                currency=item.currency,
                stage=item.stage,
                close_date=item.close_date,
            )
        case OpportunityStageChangedItem():
            if known is None or known.created_month is None:
                return (
                    f"Opportunity {item.opportunity_id} is not known: send its "
                    "opportunity.created first"
                )
            if item.currency is not None and item.currency != known.currency:
                return f"Opportunity {item.opportunity_id} is in {known.currency}"
            return OpportunityStageChanged(
                **common,
                opportunity_id=item.opportunity_id,
                stage=item.stage,
                amount=item.amount,
                previous_amount=known.amount,
                close_date=item.close_date,
            )
        case OpportunityClosedWonItem():
            if reason := _currency_misfit(
                state, org, Metric.closed_won_revenue, item.currency, known
            ):
                return reason
            return OpportunityWon(
                **common,
                opportunity_id=item.opportunity_id,
                account=item.account,
                amount=item.amount,
                currency=item.currency,
                close_date=item.close_date,
            )
        case OpportunityClosedLostItem():
            return OpportunityLost(
                **common,
                opportunity_id=item.opportunity_id,
                close_date=item.close_date,
                reason=item.reason,
            )
        case ProposalSubmittedItem():
            return ProposalSubmitted(
                **common, account=item.account, opportunity_id=item.opportunity_id
            )
        case _:
            return KeyAccountAgreed(**common, account=item.account)


def _currency_misfit(
    state: Scorecard, org: str, metric: Metric, currency: str, known: Opportunity | None
) -> str | None:
    if known is not None and known.currency != currency:
        return f"This opportunity is in {known.currency}, not {currency}"
    kpi = state.fed_kpi(org, metric)
    if kpi is not None and kpi.currency != currency:
        return f"KPI {kpi.name!r} is kept in {kpi.currency}: convert amounts before sending"
    return None


# --- evolve ---------------------------------------------------------------------------------


def _kpi_of(event: KpiDefined) -> Kpi:
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


def _set_numbers(state: Scorecard, kpi_id: UUID, period: str, **change: Any) -> Scorecard:
    key = (kpi_id, period)
    numbers = replace(state.numbers.get(key, Numbers()), **change)
    return replace(state, numbers={**state.numbers, key: numbers})


def _add(
    pipeline: Mapping[PipelineKey, Decimal], key: PipelineKey, amount: Decimal
) -> dict[PipelineKey, Decimal]:
    return {**pipeline, key: pipeline.get(key, Decimal(0)) + amount}


def _joined(partners: tuple[str, ...], named: Iterable[str]) -> tuple[str, ...]:
    """The partners the balance is shared among: partners join an alliance, none leaves, so
    an event naming fewer (written from a list that had not caught up) removes nobody."""
    return tuple(dict.fromkeys((*partners, *named)))


def evolve(state: Scorecard, event: DomainEvent) -> Scorecard:
    match event:
        case ScorecardOpened():
            return Scorecard(
                alliance_id=event.alliance_id,
                partners=tuple(event.partners),
                currency=event.currency,
                thresholds=event.thresholds,
            )
        case ScorecardThresholdsChanged():
            return replace(state, thresholds=event.thresholds)
        case KpiDefined():
            return replace(state, kpis={**state.kpis, event.kpi_id: _kpi_of(event)})
        case KpiTargetSet():
            return _set_numbers(state, event.kpi_id, event.period, target=event.target)
        case KpiActualRecorded() | KpiActualCorrected():
            return _set_numbers(state, event.kpi_id, event.period, actual=event.actual)
        case KpiActualMissing():
            return _set_numbers(state, event.kpi_id, event.period, reported_missing=True)
        case ObjectiveDefined():
            objective = Objective(event.objective_id, event.name, tuple(event.kpi_ids))
            return replace(state, objectives={**state.objectives, event.objective_id: objective})
        case ObjectivesLinked():
            return replace(state, links=state.links | {(event.cause_id, event.effect_id)})
        case InitiativeLaunched():
            initiative = Initiative(event.initiative_id, event.name, event.owner_org)
            return replace(
                state, initiatives={**state.initiatives, event.initiative_id: initiative}
            )
        case InitiativeProgressUpdated():
            initiative = replace(
                state.initiatives[event.initiative_id],
                completion=event.completion,
                as_of=event.as_of,
            )
            return replace(
                state, initiatives={**state.initiatives, event.initiative_id: initiative}
            )
        case BenefitRecorded():
            benefits = dict(state.shared_benefits)
            if event.visibility is Visibility.shared:
                benefits[event.partner_org] = (
                    benefits.get(event.partner_org, Decimal(0)) + event.amount
                )
            return replace(
                state, partners=_joined(state.partners, event.partners), shared_benefits=benefits
            )
        case PartnerWelcomed():
            return replace(state, partners=_joined(state.partners, [event.org_id]))
        case BenefitImbalanceDetected():
            return replace(state, imbalanced=True)
        case BenefitBalanceRestored():
            return replace(state, imbalanced=False)
        case PipelineEvent():
            return _evolve_pipeline(state, event)
    return state  # a status crossing: derived, it changes nothing it was derived from


def _evolve_pipeline(state: Scorecard, event: PipelineEvent) -> Scorecard:
    org = event.source_org
    pipeline, opportunities = state.pipeline, state.opportunities
    match event:
        case OpportunityCreated():
            month = month_of(event.occurred_at)
            key = (org, event.opportunity_id)
            won = opportunities.get(key)
            opportunities = opportunities.set(
                key,
                replace(
                    won or Opportunity(event.currency),
                    created_month=month,
                    amount=event.amount,
                ),
            )
            pipeline = _add(
                pipeline, (org, Metric.pipeline_value, month, event.currency), event.amount
            )
        case OpportunityStageChanged():
            key = (org, event.opportunity_id)
            opportunity = opportunities[key]
            if event.amount is not None and opportunity.created_month is not None:
                pipeline = _add(
                    pipeline,
                    (org, Metric.pipeline_value, opportunity.created_month, opportunity.currency),
                    event.amount - opportunity.amount,
                )
                opportunities = opportunities.set(key, replace(opportunity, amount=event.amount))
        case OpportunityWon():
            key = (org, event.opportunity_id)
            opportunity = opportunities.get(key) or Opportunity(event.currency)
            if opportunity.won_month is not None:  # a repeat replaces the earlier amount
                pipeline = _add(
                    pipeline,
                    (org, Metric.closed_won_revenue, opportunity.won_month, event.currency),
                    -opportunity.won_amount,
                )
            month = month_of(event.close_date)
            pipeline = _add(
                pipeline, (org, Metric.closed_won_revenue, month, event.currency), event.amount
            )
            opportunities = opportunities.set(
                key, replace(opportunity, won_month=month, won_amount=event.amount)
            )
        case OpportunityLost():
            key = (org, event.opportunity_id)
            lost = opportunities.get(key)
            if lost is not None and lost.won_month is not None:
                pipeline = _add(
                    pipeline,
                    (org, Metric.closed_won_revenue, lost.won_month, lost.currency),
                    -lost.won_amount,
                )
                opportunities = opportunities.set(
                    key, replace(lost, won_month=None, won_amount=Decimal(0))
                )
        case ProposalSubmitted():
            month = month_of(event.occurred_at)
            pipeline = _add(pipeline, (org, Metric.proposals_submitted, month, None), Decimal(1))
        case KeyAccountAgreed():
            month = month_of(event.occurred_at)
            pipeline = _add(pipeline, (org, Metric.key_accounts_agreed, month, None), Decimal(1))
    return replace(state, pipeline=pipeline, opportunities=opportunities)


# --- timers ---------------------------------------------------------------------------------

ACTUAL_DUE = "kpi_actual_due"  # the timer that runs NoteMissingActual


def actual_due(period: str, thresholds: StatusThresholds) -> datetime:
    """When a period's actuals are due: `actual_grace_days` after the period is over."""
    return first_instant_after(period) + timedelta(days=thresholds.actual_grace_days)


def actual_due_key(kpi_id: UUID, period: str) -> str:
    return f"actual-due/{kpi_id}/{period}"


def _actual_due_timer(state: Scorecard, kpi_id: UUID, period: str) -> ScheduleTimer:
    return ScheduleTimer(
        key=actual_due_key(kpi_id, period),
        due=actual_due(period, state.thresholds),
        name=ACTUAL_DUE,
        data={"kpi_id": str(kpi_id), "period": period},
    )


def timers_for(state: Scorecard, events: Sequence[DomainEvent]) -> list[TimerChange]:
    """The `kpi_actual_due` timers, given the state after `events`: a target on a period
    with no actual sets one, the actual cancels it, and new grace days move every one still
    waiting. One change per timer, the last event's word."""
    changes: dict[str, TimerChange] = {}
    for event in events:
        match event:
            case KpiTargetSet(kpi_id=kpi_id, period=period):
                if state.numbers.get((kpi_id, period), Numbers()).awaits_actual:
                    changes[actual_due_key(kpi_id, period)] = _actual_due_timer(
                        state, kpi_id, period
                    )
            case KpiActualRecorded(kpi_id=kpi_id, period=period):
                key = actual_due_key(kpi_id, period)
                changes[key] = CancelTimer(key)
            case ScorecardThresholdsChanged(thresholds=now, previous_thresholds=before):
                if before is not None and before.actual_grace_days == now.actual_grace_days:
                    continue
                for kpi_id, period in sorted(state.numbers, key=lambda p: (str(p[0]), p[1])):
                    if state.numbers[(kpi_id, period)].awaits_actual:
                        changes[actual_due_key(kpi_id, period)] = _actual_due_timer(
                            state, kpi_id, period
                        )
    return list(changes.values())


scorecard: Decider[Scorecard, Command] = Decider(
    aggregate="scorecard", initial=Scorecard, decide=decide, evolve=evolve, timers=timers_for
)
