"""A partner's view of its alliance's scorecard (ADR 0009): the shared scorecard every partner
sees, `scorecard-<alliance>`, and its own private one beside it,
`scorecard-<alliance>/private/<org>`, which holds its private KPIs (their targets, actuals,
crossings and missing actuals), its private benefits, the objectives its private KPIs
measure, and its copy of the thresholds.

A partner's command is decided on what that partner may see, the two together, and never on
another partner's private scorecard: nothing another partner keeps to itself can change the
answer, the version or the cost of a command. Each decided event goes to the stream its item
lives in, and each stream is judged on its own state, so a crossing lands beside its cause.

A private scorecard judges with thresholds it adopts from the shared one (`adopt`): a
command that writes it, or is asked by its organisation while it has KPIs, adopts them first
where they differ, and so does Concord itself after every change of thresholds
(`scorecard.policies`). Both compare values, so they agree whatever order they run in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from uuid import UUID

from concord.domain import NotFound
from concord.events import private_stream
from scorecard.domain import ingestion, judgement
from scorecard.domain.benefits import BenefitRecorded
from scorecard.domain.ingestion import IngestPipeline, ItemVerdict
from scorecard.domain.opening import OpenScorecard, ThresholdsAdopted
from scorecard.domain.rules import StatusThresholds
from scorecard.domain.scorecard import PartnerCommand, decided, judged, scorecard, stream_id
from scorecard.domain.state import NO_SCORECARD, KpiEvent, Scorecard, ScorecardEvent, Visibility
from scorecard.domain.strategy import ObjectiveDefined, ObjectiveMeasuredPrivately


def private_stream_id(alliance_id: UUID | str, org: str) -> str:
    return private_stream(stream_id(alliance_id), org)


@dataclass(frozen=True)
class PartnerView:
    shared: Scorecard
    private: Scorecard  # the partner's own

    @cached_property
    def seen(self) -> Scorecard:
        """The two as one scorecard, as the partner sees it: what its command is decided on
        and answered from."""
        shared, private = self.shared, self.private
        if not private.kpis and not private.measured_privately:
            return shared
        measured = private.measured_privately
        return replace(
            shared,
            kpis={**shared.kpis, **private.kpis},
            numbers={**shared.numbers, **private.numbers},
            objectives={
                key: replace(o, kpi_ids=(*o.kpi_ids, *measured.get(key, ())))
                for key, o in shared.objectives.items()
            },
            off_track=shared.off_track | private.off_track,
        )


def see(states: Sequence[Scorecard]) -> PartnerView:
    shared, private = states
    return PartnerView(shared, private)


def decide(view: PartnerView, command: PartnerCommand) -> list[list[ScorecardEvent]]:
    """A partner's command: the events for the shared scorecard, then for its own private
    one, each judged on its own stream."""
    events = decided(view.seen, command)
    if isinstance(command, OpenScorecard):
        return [events, []]
    shared, private = routed(view, events)
    shared = judged(view.shared, shared)
    thresholds = scorecard.fold(shared, view.shared).thresholds
    return [shared, privately_judged(view.private, thresholds, private)]


def routed(
    view: PartnerView, events: Sequence[ScorecardEvent]
) -> tuple[list[ScorecardEvent], list[ScorecardEvent]]:
    """The events for the shared scorecard, and those for the private one. An objective is
    shared; the private KPIs that measure it are named on the private scorecard."""
    shared: list[ScorecardEvent] = []
    private: list[ScorecardEvent] = []
    for event in events:
        if isinstance(event, ObjectiveDefined):
            mine = [k for k in event.kpi_ids if k in view.private.kpis]
            ours = [k for k in event.kpi_ids if k not in view.private.kpis]
            shared.append(event.model_copy(update={"kpi_ids": ours}))
            if mine:
                private.append(
                    ObjectiveMeasuredPrivately(objective_id=event.objective_id, kpi_ids=mine)
                )
        elif _kept_privately(view.shared, event):
            private.append(event)
        else:
            shared.append(event)
    return shared, private


def _kept_privately(shared: Scorecard, event: ScorecardEvent) -> bool:
    """About a private item, and not one the shared scorecard holds (a private KPI recorded
    there before private scorecards existed stays there, with all that happens to it)."""
    if isinstance(event, KpiEvent):
        return event.visibility is Visibility.private and event.kpi_id not in shared.kpis
    if isinstance(event, BenefitRecorded):
        return event.visibility is Visibility.private
    return False


def privately_judged(
    private: Scorecard, thresholds: StatusThresholds, events: list[ScorecardEvent]
) -> list[ScorecardEvent]:
    """A private scorecard's events: the shared thresholds adopted first, where they differ,
    then `events` with the status crossings they cause (a private benefit is in nobody's
    balance)."""
    adopted = adopt(private, thresholds, writing=bool(events))
    return adopted + _status_judged(scorecard.fold(adopted, private), events)


def adopt(
    private: Scorecard, thresholds: StatusThresholds, *, writing: bool = False
) -> list[ScorecardEvent]:
    """The shared thresholds taken up, with the crossings they cause: when they differ, and
    the private scorecard has KPIs to judge or is being written anyway."""
    if private.thresholds == thresholds or not (writing or private.kpis):
        return []
    change = ThresholdsAdopted(thresholds=thresholds, previous_thresholds=private.thresholds)
    return _status_judged(private, [change])


def _status_judged(state: Scorecard, events: list[ScorecardEvent]) -> list[ScorecardEvent]:
    if not events:
        return events
    return events + judgement.status_crossings(state, scorecard.fold(events, state), events)


@dataclass(frozen=True)
class IngestedView:
    events: list[list[ScorecardEvent]]  # for the shared scorecard, then the private one
    verdicts: list[ItemVerdict]
    states: list[Scorecard]  # after the events


def ingest(view: PartnerView, command: IngestPipeline) -> IngestedView:
    """A CRM batch from the partner's CRM: the pipeline on the shared scorecard, the actuals
    of each KPI it feeds on the scorecard that KPI lives on."""
    if not view.shared.exists:
        raise NotFound(NO_SCORECARD)
    accepted, verdicts, working = ingestion.accept(view.seen, command)
    # Pipeline events change the opportunities and the pipeline, nothing else.
    moved = replace(view.shared, opportunities=working.opportunities, pipeline=working.pipeline)
    shared, private = routed(view, ingestion.moved_actuals(view.seen, working))
    shared = judged(moved, shared)
    private = privately_judged(view.private, view.shared.thresholds, private)
    return IngestedView(
        [accepted + shared, private],
        verdicts,
        [scorecard.fold(shared, moved), scorecard.fold(private, view.private)],
    )
