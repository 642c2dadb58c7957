"""Scorecard's published events: each is declared with its concept (`opening`, `kpis`,
`kpi_numbers`, `judgement`, ...); this is the one list of them all, the registry every
consumer of scorecard's stream decodes with (with how their old versions read today), and
the one place a consumer imports them from."""

from __future__ import annotations

from concord.events import EventRegistry
from scorecard.domain.benefits import BenefitKind, BenefitRecorded, PartnerWelcomed
from scorecard.domain.initiatives import (
    InitiativeLaunched,
    InitiativeProgressUpdated,
    InitiativeStatus,
)
from scorecard.domain.judgement import (
    BenefitBalanceRestored,
    BenefitImbalanceDetected,
    KpiRecovered,
    KpiWentOffTrack,
)
from scorecard.domain.kpi_numbers import KpiActualCorrected, KpiActualRecorded, KpiTargetSet
from scorecard.domain.kpis import KpiDefined
from scorecard.domain.missing_actuals import KpiActualMissing
from scorecard.domain.opening import (
    ScorecardOpened,
    ScorecardThresholdsChanged,
    ThresholdsAdopted,
)
from scorecard.domain.pipeline_events import (
    KeyAccountAgreed,
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
    PipelineEvent,
    ProposalSubmitted,
)
from scorecard.domain.state import Dimension, KpiEvent, KpiKind, ScorecardEvent, Visibility
from scorecard.domain.strategy import (
    ObjectiveDefined,
    ObjectiveMeasuredPrivately,
    ObjectivesLinked,
)

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
    # Only on a partner's private scorecard (ADR 0009).
    ThresholdsAdopted,
    ObjectiveMeasuredPrivately,
)
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

__all__ = [
    "EVENTS",
    "EVENT_REGISTRY",
    "BenefitBalanceRestored",
    "BenefitImbalanceDetected",
    "BenefitKind",
    "BenefitRecorded",
    "Dimension",
    "InitiativeLaunched",
    "InitiativeProgressUpdated",
    "InitiativeStatus",
    "KeyAccountAgreed",
    "KpiActualCorrected",
    "KpiActualMissing",
    "KpiActualRecorded",
    "KpiDefined",
    "KpiEvent",
    "KpiKind",
    "KpiRecovered",
    "KpiTargetSet",
    "KpiWentOffTrack",
    "ObjectiveDefined",
    "ObjectiveMeasuredPrivately",
    "ObjectivesLinked",
    "OpportunityCreated",
    "OpportunityLost",
    "OpportunityStageChanged",
    "OpportunityWon",
    "PartnerWelcomed",
    "PipelineEvent",
    "ProposalSubmitted",
    "ScorecardEvent",
    "ScorecardOpened",
    "ScorecardThresholdsChanged",
    "ThresholdsAdopted",
    "Visibility",
]
