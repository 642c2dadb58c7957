"""Every decision is followed by its judgement: the status of each KPI period it touched (all
of them when the thresholds changed) is compared with what was last announced for it (the
scorecard remembers which periods are off track), the balance of benefits before and after,
and a crossing is an event of its own, appended with its cause (ADR 0005). Each stream is
judged on its own state, so a crossing lands in the stream of its cause (ADR 0009). The page
derives the same judgements with the same rules (`rules.py`), so they always agree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from uuid import UUID

from scorecard.domain.kpi_numbers import NumbersChanged
from scorecard.domain.opening import ScorecardThresholdsChanged, ThresholdsAdopted
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
Crossed = KpiWentOffTrack | KpiRecovered | BalanceCrossed


def crossings(
    before: Scorecard, after: Scorecard, events: Sequence[ScorecardEvent]
) -> list[ScorecardEvent]:
    """The crossings `events` caused, taking the scorecard from `before` to `after`."""
    return [*status_crossings(before, after, events), *_balance(before, after)]


def status_crossings(
    before: Scorecard, after: Scorecard, events: Sequence[ScorecardEvent]
) -> list[ScorecardEvent]:
    """The KPI periods `events` put off track or brought back (all a private scorecard
    judges: its benefits never count in the balance)."""
    return _status_crossings(before, after, _touched(after, events))


def _touched(after: Scorecard, events: Sequence[ScorecardEvent]) -> Iterable[tuple[UUID, str]]:
    if any(isinstance(e, ScorecardThresholdsChanged | ThresholdsAdopted) for e in events):
        return sorted(after.numbers, key=lambda pair: (str(pair[0]), pair[1]))
    return dict.fromkeys((e.kpi_id, e.period) for e in events if isinstance(e, NumbersChanged))


def _status_crossings(
    before: Scorecard, after: Scorecard, touched: Iterable[tuple[UUID, str]]
) -> list[ScorecardEvent]:
    judged: list[ScorecardEvent] = []
    for kpi_id, period in touched:
        kpi = after.kpis[kpi_id]
        was, now = before.status(kpi_id, period), after.status(kpi_id, period)
        # Against what was announced, not a status judged again: two writers of one stream
        # (a command and the thresholds' reaction) then agree whatever order they run in.
        announced_off = (kpi_id, period) in before.off_track
        numbers = after.numbers_of(kpi_id, period)
        ids = {"kpi_id": kpi_id, "owner_org": kpi.owner_org, "visibility": kpi.visibility}
        if now is Status.off_track and not announced_off:
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
        elif announced_off and now is not Status.off_track:
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


def evolve(state: Scorecard, event: Crossed) -> Scorecard:
    """A crossing changes nothing it was derived from, but is remembered: a KPI period off
    track, and the side of its threshold the balance is on, so each crosses once."""
    if isinstance(event, KpiWentOffTrack):
        return replace(state, off_track=state.off_track | {(event.kpi_id, event.period)})
    if isinstance(event, KpiRecovered):
        return replace(state, off_track=state.off_track - {(event.kpi_id, event.period)})
    return replace(state, imbalanced=isinstance(event, BenefitImbalanceDetected))
