"""A KPI period's actual is due `actual_grace_days` after the period ends. A target sets a
timer for that moment (`timers_for`); the actual cancels it; if it is still missing when the
timer fires, Concord's own `NoteMissingActual` reports it once (`KpiActualMissing`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from concord.domain import CancelTimer, DomainEvent, ScheduleTimer, TimerChange
from scorecard.domain.kpi_numbers import KpiActualRecorded, KpiTargetSet, with_numbers
from scorecard.domain.opening import ScorecardThresholdsChanged, ThresholdsAdopted
from scorecard.domain.periods import first_instant_after
from scorecard.domain.rules import StatusThresholds
from scorecard.domain.state import KpiEvent, Scorecard, ScorecardEvent

ACTUAL_DUE = "kpi_actual_due"  # the timer that runs NoteMissingActual


@dataclass(frozen=True)
class NoteMissingActual:
    """A KPI period's actual is due (the `kpi_actual_due` timer fired)."""

    kpi_id: UUID
    period: str


class KpiActualMissing(KpiEvent):
    """A KPI period with a target has no actual by the time it was due (the period's end
    plus the scorecard's `actual_grace_days`): reported once, for the owner organisation to
    catch up. The actual may still be recorded later. For a CRM-fed KPI it means the CRM
    reported nothing for the period."""

    name: str
    period: str
    target: Decimal
    due: datetime


def actual_due(period: str, thresholds: StatusThresholds) -> datetime:
    """When a period's actuals are due: `actual_grace_days` after the period is over."""
    return first_instant_after(period) + timedelta(days=thresholds.actual_grace_days)


def actual_due_key(kpi_id: UUID, period: str) -> str:
    return f"actual-due/{kpi_id}/{period}"


def note_missing_actual(state: Scorecard, command: NoteMissingActual) -> list[ScorecardEvent]:
    kpi_id, period = command.kpi_id, command.period
    kpi = state.kpis.get(kpi_id)
    numbers = state.numbers_of(kpi_id, period)
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


def evolve(state: Scorecard, event: KpiActualMissing) -> Scorecard:
    return with_numbers(state, event.kpi_id, event.period, reported_missing=True)


def timers_for(state: Scorecard, events: Sequence[DomainEvent]) -> list[TimerChange]:
    """The `kpi_actual_due` timers, given the state after `events`: a target on a period
    with no actual sets one, the actual cancels it, and new grace days move every one still
    waiting. One change per timer, the last event's word."""
    changes: dict[str, TimerChange] = {}
    for event in events:
        match event:
            case KpiTargetSet(kpi_id=kpi_id, period=period):
                if state.numbers_of(kpi_id, period).awaits_actual:
                    changes[actual_due_key(kpi_id, period)] = _due_timer(state, kpi_id, period)
            case KpiActualRecorded(kpi_id=kpi_id, period=period):
                key = actual_due_key(kpi_id, period)
                changes[key] = CancelTimer(key)
            case (
                ScorecardThresholdsChanged(thresholds=now, previous_thresholds=before)
                | ThresholdsAdopted(thresholds=now, previous_thresholds=before)
            ):
                if before is not None and before.actual_grace_days == now.actual_grace_days:
                    continue
                for kpi_id, period in sorted(state.numbers, key=lambda p: (str(p[0]), p[1])):
                    if state.numbers[(kpi_id, period)].awaits_actual:
                        changes[actual_due_key(kpi_id, period)] = _due_timer(state, kpi_id, period)
    return list(changes.values())


def _due_timer(state: Scorecard, kpi_id: UUID, period: str) -> ScheduleTimer:
    return ScheduleTimer(
        key=actual_due_key(kpi_id, period),
        due=actual_due(period, state.thresholds),
        name=ACTUAL_DUE,
        data={"kpi_id": str(kpi_id), "period": period},
    )
