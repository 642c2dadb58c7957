"""Every decision is followed by its judgement: the status of each KPI period it touched (all
of them when the thresholds changed) and the balance of benefits are compared before and
after, and a crossing is an event of its own, appended with its cause (ADR 0005). The page
derives the same judgements with the same rules (`rules.py`), so they always agree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from uuid import UUID

from scorecard.domain.kpi_numbers import NumbersChanged
from scorecard.domain.opening import ScorecardThresholdsChanged
from scorecard.domain.rules import Status, imbalance_index, shares
from scorecard.domain.state import KpiEvent, Scorecard, ScorecardEvent


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


class BenefitImbalanceDetected(ScorecardEvent):
    imbalance_index: Decimal
    threshold: Decimal
    shares: dict[str, Decimal]
    most_favoured_org: str


class BenefitBalanceRestored(ScorecardEvent):
    imbalance_index: Decimal
    threshold: Decimal
    shares: dict[str, Decimal]


BalanceCrossed = BenefitImbalanceDetected | BenefitBalanceRestored


def crossings(
    before: Scorecard, after: Scorecard, events: Sequence[ScorecardEvent]
) -> list[ScorecardEvent]:
    """The crossings `events` caused, taking the scorecard from `before` to `after`."""
    return [*_status_crossings(before, after, _touched(after, events)), *_balance(before, after)]


def _touched(after: Scorecard, events: Sequence[ScorecardEvent]) -> Iterable[tuple[UUID, str]]:
    if any(isinstance(e, ScorecardThresholdsChanged) for e in events):
        return sorted(after.numbers, key=lambda pair: (str(pair[0]), pair[1]))
    return dict.fromkeys((e.kpi_id, e.period) for e in events if isinstance(e, NumbersChanged))


def _status_crossings(
    before: Scorecard, after: Scorecard, touched: Iterable[tuple[UUID, str]]
) -> list[ScorecardEvent]:
    judged: list[ScorecardEvent] = []
    for kpi_id, period in touched:
        kpi = after.kpis[kpi_id]
        was, now = before.status(kpi_id, period), after.status(kpi_id, period)
        numbers = after.numbers_of(kpi_id, period)
        ids = {"kpi_id": kpi_id, "owner_org": kpi.owner_org, "visibility": kpi.visibility}
        if now is Status.off_track and was is not Status.off_track:
            assert numbers.target is not None and numbers.actual is not None
            judged.append(
                KpiWentOffTrack(
                    **ids,
                    period=period,
                    target=numbers.target,
                    actual=numbers.actual,
                    previous_status=was,
                )
            )
        elif was is Status.off_track and now is not Status.off_track:
            judged.append(
                KpiRecovered(
                    **ids, period=period, target=numbers.target, actual=numbers.actual, status=now
                )
            )
    return judged


def _balance(before: Scorecard, after: Scorecard) -> list[ScorecardEvent]:
    index = imbalance_index(after.shared_benefits, after.partners)
    threshold = after.thresholds.imbalance_threshold
    imbalanced = index >= threshold
    if imbalanced == before.imbalanced:
        return []
    split = shares(after.shared_benefits, after.partners)
    if imbalanced:
        most_favoured = max(after.partners, key=lambda p: (split[p], p))
        return [
            BenefitImbalanceDetected(
                imbalance_index=index,
                threshold=threshold,
                shares=split,
                most_favoured_org=most_favoured,
            )
        ]
    return [BenefitBalanceRestored(imbalance_index=index, threshold=threshold, shares=split)]


def evolve(state: Scorecard, event: BalanceCrossed) -> Scorecard:
    """A status crossing changes nothing it was derived from; the balance remembers which
    side of its threshold it is on, so it crosses once."""
    return replace(state, imbalanced=isinstance(event, BenefitImbalanceDetected))
