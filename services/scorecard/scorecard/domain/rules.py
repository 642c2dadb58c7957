"""The derived judgements on a scorecard: a KPI's status and direction of travel, and the
balance of benefits between partners. Pure functions, shared by the aggregate (which emits
events when a status changes) and the read API (which shows them), so both always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum, StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from concord.domain import DecimalNumber

Ratio = Annotated[Decimal, DecimalNumber(digits=1, places=4)]
# A share of the baseline, below 1; and a degree of imbalance, from above 0 (a hair off equal
# shares) to 1 (one partner gains all).
Fraction = Annotated[Decimal, DecimalNumber(digits=0, places=4)]
Imbalance = Annotated[Decimal, DecimalNumber(digits=0, places=4, positive=True, inclusive=True)]
FOUR_PLACES = Decimal("0.0001")


class Status(StrEnum):
    on_track = "on_track"
    at_risk = "at_risk"
    off_track = "off_track"
    no_target = "no_target"  # nothing to judge against
    no_data = "no_data"  # target set, no actual yet


class Direction(StrEnum):
    up = "up"
    flat = "flat"
    down = "down"


class GoodDirection(Enum):  # not a str: `lower` would shadow str.lower
    higher = "higher"
    lower = "lower"


class StatusThresholds(BaseModel):
    """How a scorecard judges. Attainment is actual ÷ target (target ÷ actual when lower is
    better): on track from `on_track_from`, off track below `off_track_below`, at risk in
    between. Direction compares a period's actual with the mean of up to three earlier
    periods: a change within ±`flat_band` of it is flat. The balance of benefits is
    imbalanced from `imbalance_threshold` on (0 = equal shares, 1 = one partner gains all).
    A period's actual is due `actual_grace_days` after the period ends; a KPI period with a
    target and no actual by then is reported missing.
    """

    # Defaults go through the same rounding as given values, so they always read "0.9500".
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    on_track_from: Ratio = Decimal("0.95")
    off_track_below: Ratio = Decimal("0.80")
    flat_band: Fraction = Decimal("0.02")
    imbalance_threshold: Imbalance = Decimal("0.30")
    # Thresholds recorded before this setting existed read as the default.
    actual_grace_days: int = Field(
        10,
        ge=0,
        le=90,
        description="Days after a period ends by which its actuals are due: a KPI period "
        "with a target and no actual by then is reported missing",
    )

    @model_validator(mode="after")
    def _ordered(self) -> StatusThresholds:
        if self.off_track_below > self.on_track_from:
            raise ValueError("off_track_below cannot be above on_track_from")
        return self


def attainment(
    target: Decimal | None, actual: Decimal | None, good: GoodDirection
) -> Decimal | None:
    """How much of the target the actual achieves; None until both are known, and where a
    ratio means nothing (when higher is better, a zero or negative target; when lower is
    better, a negative target or an actual of zero or less), in which case only 'met or
    not' counts."""
    if target is None or actual is None:
        return None
    if good is GoodDirection.higher:
        if target <= 0:
            return None
        ratio = actual / target
    else:
        if target < 0 or actual <= 0:
            return None
        ratio = target / actual
    return max(ratio, Decimal(0)).quantize(FOUR_PLACES, ROUND_HALF_EVEN)


def status_of(
    target: Decimal | None,
    actual: Decimal | None,
    good: GoodDirection,
    thresholds: StatusThresholds,
) -> Status:
    if target is None:
        return Status.no_target
    if actual is None:
        return Status.no_data
    ratio = attainment(target, actual, good)
    if ratio is None:
        met = actual >= target if good is GoodDirection.higher else actual <= target
        return Status.on_track if met else Status.off_track
    if ratio >= thresholds.on_track_from:
        return Status.on_track
    if ratio >= thresholds.off_track_below:
        return Status.at_risk
    return Status.off_track


def direction_of(
    earlier: Sequence[Decimal], actual: Decimal | None, flat_band: Decimal
) -> Direction | None:
    """Up, flat or down against the mean of the (up to three) most recent earlier actuals;
    None until there is an actual and something to compare it with."""
    recent = list(earlier)[-3:]
    if actual is None or not recent:
        return None
    baseline = sum(recent, Decimal(0)) / len(recent)
    # From a zero baseline any move counts; otherwise the move relative to the baseline.
    change = actual if baseline == 0 else (actual - baseline) / abs(baseline)
    if change > flat_band:
        return Direction.up
    if change < -flat_band:
        return Direction.down
    return Direction.flat


def shares(amounts: Mapping[str, Decimal], partners: Sequence[str]) -> dict[str, Decimal]:
    """Each partner's share of the benefits, in [0, 1]; all zero while nothing is recorded."""
    total = sum((amounts.get(p, Decimal(0)) for p in partners), Decimal(0))
    if total == 0:
        return {p: Decimal(0) for p in partners}
    return {
        p: (amounts.get(p, Decimal(0)) / total).quantize(FOUR_PLACES, ROUND_HALF_EVEN)
        for p in partners
    }


def imbalance_index(amounts: Mapping[str, Decimal], partners: Sequence[str]) -> Decimal:
    """How far the benefits are from an equal split: the largest gap between a partner's
    share and 1/n, scaled so that one partner taking everything is 1. Two partners at
    65/35 score 0.30."""
    n = len(partners)
    total = sum((amounts.get(p, Decimal(0)) for p in partners), Decimal(0))
    if n < 2 or total == 0:
        return Decimal(0)
    fair = Decimal(1) / n
    gap = max(abs(amounts.get(p, Decimal(0)) / total - fair) for p in partners)
    return (gap / (1 - fair)).quantize(FOUR_PLACES, ROUND_HALF_EVEN)
