"""The alliance scorecard: the shared "North Star" both partners review every month.

One scorecard per alliance, one stream (ADR 0005): its KPIs in the five balanced dimensions
with targets and actuals per period, the strategy map of objectives, the initiatives, the
benefits ledger, and the pipeline its partners' CRMs report. Pure: `decide(state, command)
-> events` and `evolve(state, event) -> state`, each handing a command or an event to the
module of its concept; `ingest` is `decide` for a CRM batch, with a verdict per item.

Every decision is followed by its judgement (`judgement.py`), and some events set timers
(`missing_actuals.timers_for`). Concord also welcomes a partner governance adds
(`WelcomePartner`), which can tip the balance.
"""

from __future__ import annotations

from uuid import UUID

from concord.domain import Decider, DomainEvent, NotFound
from scorecard.domain import (
    benefits,
    ingestion,
    initiatives,
    judgement,
    kpi_numbers,
    kpis,
    missing_actuals,
    opening,
    pipeline_events,
    strategy,
)
from scorecard.domain.benefits import RecordBenefit, WelcomePartner
from scorecard.domain.ingestion import Ingested, IngestPipeline
from scorecard.domain.initiatives import LaunchInitiative, UpdateInitiativeProgress
from scorecard.domain.kpi_numbers import RecordKpiActual, SetKpiTarget
from scorecard.domain.kpis import DefineKpi
from scorecard.domain.missing_actuals import NoteMissingActual
from scorecard.domain.opening import ChangeThresholds, OpenScorecard
from scorecard.domain.state import NO_SCORECARD, Scorecard, ScorecardEvent
from scorecard.domain.strategy import DefineObjective, LinkObjectives

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
# Concord's own commands: a timer or a reaction runs them, nobody asks, so they have no `by`
# and find nothing to do (rather than an error) when there is no scorecard.
ConcordCommand = NoteMissingActual | WelcomePartner
Command = PartnerCommand | ConcordCommand


def stream_id(alliance_id: UUID | str) -> str:
    return f"scorecard-{alliance_id}"


def decide(state: Scorecard, command: Command) -> list[ScorecardEvent]:
    """A command on one stream's state, judged (a timer's or a reaction's command; a
    partner's command decides on its view, `partner_view.decide`)."""
    if isinstance(command, IngestPipeline):
        return ingest(state, command).events
    events = decided(state, command)
    return events if isinstance(command, OpenScorecard) else judged(state, events)


def decided(state: Scorecard, command: Command) -> list[ScorecardEvent]:
    """What a command decides, before its judgement."""
    if isinstance(command, OpenScorecard):
        return opening.open_scorecard(state, command)
    if isinstance(command, NoteMissingActual):
        # On a private scorecard too, which is never opened: the KPI is all it needs.
        return missing_actuals.note_missing_actual(state, command)
    if isinstance(command, WelcomePartner):
        return benefits.welcome_partner(state, command) if state.exists else []
    if not state.exists:
        raise NotFound(NO_SCORECARD)
    assert not isinstance(command, IngestPipeline)  # a batch has verdicts: `ingest`
    return _partner_decides(state, command)


def _partner_decides(state: Scorecard, command: PartnerCommand) -> list[ScorecardEvent]:
    match command:
        case ChangeThresholds():
            return opening.change_thresholds(state, command)
        case DefineKpi():
            return kpis.define_kpi(state, command)
        case SetKpiTarget():
            return kpi_numbers.set_target(state, command)
        case RecordKpiActual():
            return kpi_numbers.record_actual(state, command)
        case DefineObjective():
            return strategy.define_objective(state, command)
        case LinkObjectives():
            return strategy.link_objectives(state, command)
        case LaunchInitiative():
            return initiatives.launch(state, command)
        case UpdateInitiativeProgress():
            return initiatives.update_progress(state, command)
        case RecordBenefit():
            return benefits.record_benefit(state, command)
    raise TypeError(f"not a scorecard command: {command!r}")


def ingest(state: Scorecard, command: IngestPipeline) -> Ingested:
    """A CRM batch: a verdict per item, the accepted items' pipeline events, then the actuals
    of the KPIs the batch moved, with their judgement."""
    if not state.exists:
        raise NotFound(NO_SCORECARD)
    accepted, verdicts, working = ingestion.accept(state, command)
    actuals = judged(working, ingestion.moved_actuals(state, working))
    return Ingested(accepted + actuals, verdicts, scorecard.fold(actuals, working))


def judged(state: Scorecard, events: list[ScorecardEvent]) -> list[ScorecardEvent]:
    """The decided events, followed by the status and balance crossings they cause."""
    if not events:
        return events
    return events + judgement.crossings(state, scorecard.fold(events, state), events)


def evolve(state: Scorecard, event: DomainEvent) -> Scorecard:
    match event:
        case (
            opening.ScorecardOpened()
            | opening.ScorecardThresholdsChanged()
            | opening.ThresholdsAdopted()
        ):
            return opening.evolve(state, event)
        case kpis.KpiDefined():
            return kpis.evolve(state, event)
        case (
            kpi_numbers.KpiTargetSet()
            | kpi_numbers.KpiActualRecorded()
            | kpi_numbers.KpiActualCorrected()
        ):
            return kpi_numbers.evolve(state, event)
        case missing_actuals.KpiActualMissing():
            return missing_actuals.evolve(state, event)
        case (
            strategy.ObjectiveDefined()
            | strategy.ObjectivesLinked()
            | strategy.ObjectiveMeasuredPrivately()
        ):
            return strategy.evolve(state, event)
        case initiatives.InitiativeLaunched() | initiatives.InitiativeProgressUpdated():
            return initiatives.evolve(state, event)
        case benefits.BenefitRecorded() | benefits.PartnerWelcomed():
            return benefits.evolve(state, event)
        case (
            judgement.KpiWentOffTrack()
            | judgement.KpiRecovered()
            | judgement.BenefitImbalanceDetected()
            | judgement.BenefitBalanceRestored()
        ):
            return judgement.evolve(state, event)
        case pipeline_events.PipelineEvent():
            return pipeline_events.evolve(state, event)
    return state


scorecard: Decider[Scorecard, Command] = Decider(
    aggregate="scorecard",
    initial=Scorecard,
    decide=decide,
    evolve=evolve,
    timers=missing_actuals.timers_for,
)
