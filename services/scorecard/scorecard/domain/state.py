"""What an alliance's scorecard holds, as every command decides on it: its KPIs and their
numbers per period, the strategy map, the initiatives, each partner's shared benefits and the
pipeline its partners' CRMs report. Immutable: each event gives a new state (`evolve`).

Also the words every part of the scorecard shares: the five balanced dimensions, who may see
an item, and the bases of what callers send (`Body`) and of what happens (`ScorecardEvent`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

import immutables
from pydantic import BaseModel, ConfigDict

from concord.domain import DomainEvent, NotFound
from scorecard.domain.periods import Cadence, months_in
from scorecard.domain.pipeline import Metric
from scorecard.domain.rules import GoodDirection, Status, StatusThresholds, status_of

NO_SCORECARD = "This alliance has no scorecard yet"


class Dimension(StrEnum):
    commercial = "commercial"
    technical = "technical"
    strategic = "strategic"
    cultural = "cultural"
    operational = "operational"


class KpiKind(StrEnum):
    leading = "leading"
    lagging = "lagging"


class Visibility(StrEnum):
    shared = "shared"  # every partner sees it
    private = "private"  # only the owner organisation sees it


class Body(BaseModel):
    """What a caller sends: nothing it does not name, and nothing changed once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ScorecardEvent(DomainEvent):
    aggregate: ClassVar[str] = "scorecard"


class KpiEvent(ScorecardEvent):
    """About one KPI. Carries who owns it and who may see it, so every consumer (a read
    model, a notification) can keep a private KPI within its organisation."""

    kpi_id: UUID
    owner_org: str
    visibility: Visibility


@dataclass(frozen=True)
class Kpi:
    kpi_id: UUID
    name: str
    dimension: Dimension
    kind: KpiKind
    unit: str
    currency: str | None
    good_direction: GoodDirection
    owner_org: str
    visibility: Visibility
    cadence: Cadence
    headline: bool
    feed: Metric | None

    def visible_to(self, org: str) -> bool:
        return self.visibility is Visibility.shared or self.owner_org == org


@dataclass(frozen=True)
class Numbers:
    target: Decimal | None = None
    actual: Decimal | None = None
    reported_missing: bool = False  # the actual was not there when it was due

    @property
    def awaits_actual(self) -> bool:
        """A target, no actual yet, and not yet reported missing: its actual is still due."""
        return self.target is not None and self.actual is None and not self.reported_missing


@dataclass(frozen=True)
class Objective:
    objective_id: UUID
    name: str
    kpi_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class Initiative:
    initiative_id: UUID
    name: str
    owner_org: str
    completion: int = 0
    as_of: date | None = None


@dataclass(frozen=True)
class Opportunity:
    currency: str
    created_month: str | None = None  # None when the CRM only reported its close
    amount: Decimal = Decimal(0)  # counted in the created month's pipeline value
    won_month: str | None = None
    won_amount: Decimal = Decimal(0)


# (organisation, metric, month, currency or None for counts) -> total
PipelineKey = tuple[str, Metric, str, str | None]


@dataclass(frozen=True)
class Scorecard:
    alliance_id: UUID | None = None
    partners: tuple[str, ...] = ()
    currency: str = ""
    thresholds: StatusThresholds = field(default_factory=StatusThresholds)
    kpis: Mapping[UUID, Kpi] = field(default_factory=dict)
    numbers: Mapping[tuple[UUID, str], Numbers] = field(default_factory=dict)
    objectives: Mapping[UUID, Objective] = field(default_factory=dict)
    links: frozenset[tuple[UUID, UUID]] = frozenset()
    # On a private scorecard: the objectives its organisation's private KPIs measure.
    measured_privately: Mapping[UUID, tuple[UUID, ...]] = field(default_factory=dict)
    initiatives: Mapping[UUID, Initiative] = field(default_factory=dict)
    # The KPI periods announced off track (and not recovered since): what a crossing is
    # judged against, whatever thresholds judged them then.
    off_track: frozenset[tuple[UUID, str]] = frozenset()
    shared_benefits: Mapping[str, Decimal] = field(default_factory=dict)  # per partner
    imbalanced: bool = False
    # A persistent map: each pipeline event adds one opportunity without copying them all.
    opportunities: immutables.Map[tuple[str, str], Opportunity] = field(
        default_factory=immutables.Map
    )
    pipeline: Mapping[PipelineKey, Decimal] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.alliance_id is not None

    def kpi_for(self, kpi_id: UUID, org: str) -> Kpi:
        kpi = self.kpis.get(kpi_id)
        if kpi is None or not kpi.visible_to(org):
            raise NotFound("No such KPI on this scorecard")
        return kpi

    def numbers_of(self, kpi_id: UUID, period: str) -> Numbers:
        return self.numbers.get((kpi_id, period), Numbers())

    def status(self, kpi_id: UUID, period: str) -> Status:
        kpi = self.kpis.get(kpi_id)
        if kpi is None:
            return Status.no_target
        numbers = self.numbers_of(kpi_id, period)
        return status_of(numbers.target, numbers.actual, kpi.good_direction, self.thresholds)

    def fed_kpi(self, org: str, metric: Metric) -> Kpi | None:
        return next(
            (k for k in self.kpis.values() if k.feed is metric and k.owner_org == org), None
        )

    def metric_total(self, kpi: Kpi, period: str) -> Decimal:
        assert kpi.feed is not None
        return sum(
            (
                self.pipeline.get((kpi.owner_org, kpi.feed, month, kpi.currency), Decimal(0))
                for month in months_in(period)
            ),
            Decimal(0),
        )

    def effect_reaches(self, start: UUID, goal: UUID) -> bool:
        """Whether `goal` is reachable from `start` along cause -> effect links."""
        seen, frontier = {start}, [start]
        while frontier:
            node = frontier.pop()
            for cause, effect in self.links:
                if cause == node and effect not in seen:
                    if effect == goal:
                        return True
                    seen.add(effect)
                    frontier.append(effect)
        return False
