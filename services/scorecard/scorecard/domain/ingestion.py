"""A CRM batch, decided item by item: each item becomes a pipeline event or is rejected with
its reason (one bad item never sinks the others), and the KPIs fed by the totals the batch
moved get their new actuals. The scorecard judges those like any other (`scorecard.ingest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from concord.domain import Actor
from scorecard.domain.kpi_numbers import actual_events
from scorecard.domain.periods import period_of
from scorecard.domain.pipeline import (
    Metric,
    OpportunityClosedLostItem,
    OpportunityClosedWonItem,
    OpportunityCreatedItem,
    OpportunityStageChangedItem,
    PipelineItem,
    ProposalSubmittedItem,
)
from scorecard.domain.pipeline_events import (
    KeyAccountAgreed,
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
    PipelineEvent,
    ProposalSubmitted,
    evolve,
)
from scorecard.domain.state import Opportunity, Scorecard, ScorecardEvent


@dataclass(frozen=True)
class IngestPipeline:
    items: tuple[PipelineItem, ...]
    source_org: str  # whose CRM sent them (its integration credential says)
    by: Actor


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


def accept(
    state: Scorecard, command: IngestPipeline
) -> tuple[list[ScorecardEvent], list[ItemVerdict], Scorecard]:
    """The pipeline events of the items that fit, a verdict per item, and the state after."""
    working = state
    accepted: list[ScorecardEvent] = []
    verdicts: list[ItemVerdict] = []
    for item in command.items:
        event_or_reason = _pipeline_event(working, command.source_org, item)
        if isinstance(event_or_reason, str):
            verdicts.append(ItemVerdict(False, event_or_reason))
            continue
        accepted.append(event_or_reason)
        working = evolve(working, event_or_reason)
        verdicts.append(ItemVerdict(True))
    return accepted, verdicts, working


def moved_actuals(before: Scorecard, after: Scorecard) -> list[ScorecardEvent]:
    """The actuals of the fed KPI periods whose totals moved from `before` to `after`."""
    moved: set[tuple[UUID, str]] = set()
    for key, total in after.pipeline.items():
        org, metric, month, _ = key
        kpi = after.fed_kpi(org, metric)
        if kpi is not None and before.pipeline.get(key) != total:
            moved.add((kpi.kpi_id, period_of(date.fromisoformat(f"{month}-01"), kpi.cadence)))
    actuals: list[ScorecardEvent] = []
    for kpi_id, period in sorted(moved, key=lambda pair: (str(pair[0]), pair[1])):
        kpi = after.kpis[kpi_id]
        actuals += actual_events(after, kpi, period, after.metric_total(kpi, period), "crm", None)
    return actuals


def _pipeline_event(state: Scorecard, org: str, item: PipelineItem) -> PipelineEvent | str:
    """The event an item becomes, or why it cannot."""
    common = {"crm_event_id": item.id, "source_org": org, "occurred_at": item.occurred_at}
    match item:
        case OpportunityCreatedItem():
            return _created(state, org, item, common)
        case OpportunityStageChangedItem():
            return _stage_changed(state, org, item, common)
        case OpportunityClosedWonItem():
            return _won(state, org, item, common)
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


def _created(
    state: Scorecard, org: str, item: OpportunityCreatedItem, common: dict[str, Any]
) -> PipelineEvent | str:
    known = state.opportunities.get((org, item.opportunity_id))
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


def _stage_changed(
    state: Scorecard, org: str, item: OpportunityStageChangedItem, common: dict[str, Any]
) -> PipelineEvent | str:
    known = state.opportunities.get((org, item.opportunity_id))
    if known is None or known.created_month is None:
        return f"Opportunity {item.opportunity_id} is not known: send its opportunity.created first"
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


def _won(
    state: Scorecard, org: str, item: OpportunityClosedWonItem, common: dict[str, Any]
) -> PipelineEvent | str:
    known = state.opportunities.get((org, item.opportunity_id))
    if reason := _currency_misfit(state, org, Metric.closed_won_revenue, item.currency, known):
        return reason
    return OpportunityWon(
        **common,
        opportunity_id=item.opportunity_id,
        account=item.account,
        amount=item.amount,
        currency=item.currency,
        close_date=item.close_date,
    )


def _currency_misfit(
    state: Scorecard, org: str, metric: Metric, currency: str, known: Opportunity | None
) -> str | None:
    if known is not None and known.currency != currency:
        return f"This opportunity is in {known.currency}, not {currency}"
    kpi = state.fed_kpi(org, metric)
    if kpi is not None and kpi.currency != currency:
        return f"KPI {kpi.name!r} is kept in {kpi.currency}: convert amounts before sending"
    return None
