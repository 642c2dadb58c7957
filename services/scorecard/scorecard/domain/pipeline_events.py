"""The pipeline events the scorecard records from its partners' CRMs (one per accepted item,
`ingestion`), and the monthly totals per organisation and metric they move; a KPI fed by a
metric takes its actuals from these totals. The mapping is in `pipeline.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from scorecard.domain.pipeline import Metric, month_of
from scorecard.domain.state import Opportunity, PipelineKey, Scorecard, ScorecardEvent


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


def evolve(state: Scorecard, event: PipelineEvent) -> Scorecard:
    match event:
        case OpportunityCreated():
            return _created(state, event)
        case OpportunityStageChanged():
            return _stage_changed(state, event)
        case OpportunityWon():
            return _won(state, event)
        case OpportunityLost():
            return _lost(state, event)
        case ProposalSubmitted():
            return _counted(state, event, Metric.proposals_submitted)
        case KeyAccountAgreed():
            return _counted(state, event, Metric.key_accounts_agreed)
    return state


def _created(state: Scorecard, event: OpportunityCreated) -> Scorecard:
    org, month = event.source_org, month_of(event.occurred_at)
    key = (org, event.opportunity_id)
    won = state.opportunities.get(key)  # a CRM may report the close before the creation
    opportunity = replace(
        won or Opportunity(event.currency), created_month=month, amount=event.amount
    )
    pipeline = _add(
        state.pipeline, (org, Metric.pipeline_value, month, event.currency), event.amount
    )
    return replace(
        state, pipeline=pipeline, opportunities=state.opportunities.set(key, opportunity)
    )


def _stage_changed(state: Scorecard, event: OpportunityStageChanged) -> Scorecard:
    key = (event.source_org, event.opportunity_id)
    opportunity = state.opportunities[key]
    if event.amount is None or opportunity.created_month is None:
        return state
    pipeline = _add(
        state.pipeline,
        (key[0], Metric.pipeline_value, opportunity.created_month, opportunity.currency),
        event.amount - opportunity.amount,
    )
    moved = replace(opportunity, amount=event.amount)
    return replace(state, pipeline=pipeline, opportunities=state.opportunities.set(key, moved))


def _won(state: Scorecard, event: OpportunityWon) -> Scorecard:
    org = event.source_org
    key = (org, event.opportunity_id)
    opportunity = state.opportunities.get(key) or Opportunity(event.currency)
    pipeline = state.pipeline
    if opportunity.won_month is not None:  # a repeat replaces the earlier amount
        pipeline = _add(
            pipeline,
            (org, Metric.closed_won_revenue, opportunity.won_month, event.currency),
            -opportunity.won_amount,
        )
    month = month_of(event.close_date)
    pipeline = _add(pipeline, (org, Metric.closed_won_revenue, month, event.currency), event.amount)
    won = replace(opportunity, won_month=month, won_amount=event.amount)
    return replace(state, pipeline=pipeline, opportunities=state.opportunities.set(key, won))


def _lost(state: Scorecard, event: OpportunityLost) -> Scorecard:
    key = (event.source_org, event.opportunity_id)
    lost = state.opportunities.get(key)
    if lost is None or lost.won_month is None:
        return state
    pipeline = _add(
        state.pipeline,
        (key[0], Metric.closed_won_revenue, lost.won_month, lost.currency),
        -lost.won_amount,
    )
    unwon = replace(lost, won_month=None, won_amount=Decimal(0))
    return replace(state, pipeline=pipeline, opportunities=state.opportunities.set(key, unwon))


def _counted(state: Scorecard, event: PipelineEvent, metric: Metric) -> Scorecard:
    key = (event.source_org, metric, month_of(event.occurred_at), None)
    return replace(state, pipeline=_add(state.pipeline, key, Decimal(1)))


def _add(
    pipeline: Mapping[PipelineKey, Decimal], key: PipelineKey, amount: Decimal
) -> dict[PipelineKey, Decimal]:
    return {**pipeline, key: pipeline.get(key, Decimal(0)) + amount}
