"""What a benchmark reports: a figure against its same-run baseline, and whether the target
was met. Also the small statistics the benchmarks share."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Figure:
    """One row of the table: `value` measured the kernel's way, `baseline` the raw way."""

    key: str
    label: str
    unit: str
    value: float
    baseline: float
    baseline_label: str
    target: str | None = None
    check: Callable[[Figure], bool] | None = field(default=None, repr=False)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if not self.baseline or math.isnan(self.baseline) or math.isnan(self.value):
            return math.nan
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.check is None:
            return None
        if math.isnan(self.value):
            return False
        return self.check(self)

    def as_json(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) or math.isinf(x) else round(x, 4)

        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "value": clean(self.value),
            "baseline": clean(self.baseline),
            "baseline_label": self.baseline_label,
            "ratio": clean(self.ratio),
            "target": self.target,
            "met": self.met,
            "details": self.details,
        }


def ratio_at_least(minimum: float) -> Callable[[Figure], bool]:
    return lambda figure: figure.ratio >= minimum


def value_below(maximum: float) -> Callable[[Figure], bool]:
    return lambda figure: figure.value < maximum
