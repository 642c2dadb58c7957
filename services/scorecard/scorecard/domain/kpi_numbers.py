"""A KPI's numbers per period: the target its owner organisation sets and the actual it
records, by hand or through its CRM (`ingestion`). A later actual corrects the earlier one,
which stays in the KPI's history."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import Field

from concord.domain import Actor, DecimalNumber, Forbidden, Rejected, ShortText
from scorecard.domain.periods import Cadence, Period, cadence_of
from scorecard.domain.state import Body, Kpi, KpiEvent, Scorecard, ScorecardEvent

# A KPI value: an amount, a count, a percentage or a number of days.
Value = Annotated[Decimal, DecimalNumber(digits=13, places=4, signed=True)]


class KpiTarget(Body):
    period: Period
    target: Value


class KpiActual(Body):
    period: Period
    actual: Value
    note: ShortText | None = Field(default=None, description="Where the number comes from")


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


NumbersChanged = KpiTargetSet | KpiActualRecorded | KpiActualCorrected


def set_target(state: Scorecard, command: SetKpiTarget) -> list[ScorecardEvent]:
    kpi_id, t = command.kpi_id, command.target
    kpi = _keeper(state, kpi_id, command.by, t.period)
    previous = state.numbers_of(kpi_id, t.period).target
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


def record_actual(state: Scorecard, command: RecordKpiActual) -> list[ScorecardEvent]:
    a = command.actual
    kpi = _keeper(state, command.kpi_id, command.by, a.period)
    if kpi.feed is not None:
        raise Rejected(
            f"This KPI is fed by {kpi.owner_org}'s CRM ({kpi.feed}): correct the "
            "numbers there and the CRM's next events correct them here"
        )
    return actual_events(state, kpi, a.period, a.actual, "manual", a.note)


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


def actual_events(
    state: Scorecard, kpi: Kpi, period: str, value: Decimal, source: str, note: str | None
) -> list[ScorecardEvent]:
    """A period's actual: recorded the first time, corrected after, nothing if unchanged."""
    previous = state.numbers_of(kpi.kpi_id, period).actual
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


def with_numbers(state: Scorecard, kpi_id: UUID, period: str, **change: Any) -> Scorecard:
    numbers = replace(state.numbers_of(kpi_id, period), **change)
    return replace(state, numbers={**state.numbers, (kpi_id, period): numbers})


def evolve(state: Scorecard, event: NumbersChanged) -> Scorecard:
    if isinstance(event, KpiTargetSet):
        return with_numbers(state, event.kpi_id, event.period, target=event.target)
    return with_numbers(state, event.kpi_id, event.period, actual=event.actual)
