"""The strategy map as the API shows it: each objective with the KPIs that measure it (only
those the caller may see) and the objectives it drives."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from concord.commands import Version
from scorecard.domain.state import Dimension, Scorecard
from scorecard.views.versions import Versioned, versions


class ObjectiveSummary(BaseModel):
    id: UUID
    name: str
    kpi_ids: list[UUID]
    drives: list[UUID] = Field(description="The objectives this one is a cause of")


class DefinedObjective(ObjectiveSummary, Versioned):
    """An objective as its definition, or a link from it, answers it."""


class ObjectiveNode(ObjectiveSummary):
    description: str | None
    dimension: Dimension
    driven_by: list[UUID]


class StrategyMap(BaseModel):
    objectives: list[ObjectiveNode]


def defined_objective(
    state: Scorecard, objective_id: UUID, org: str, version: Version
) -> DefinedObjective:
    objective = state.objectives[objective_id]
    return DefinedObjective(
        id=objective_id,
        name=objective.name,
        drives=sorted((effect for cause, effect in state.links if cause == objective_id), key=str),
        kpi_ids=[k for k in objective.kpi_ids if state.kpis[k].visible_to(org)],
        **versions(version),
    )


def strategy_map(
    objectives: Iterable[Any], links: Iterable[Any], visible: set[UUID]
) -> StrategyMap:
    drives: dict[UUID, list[UUID]] = defaultdict(list)
    driven_by: dict[UUID, list[UUID]] = defaultdict(list)
    for link in sorted(links, key=lambda r: r.position):
        drives[link.cause_id].append(link.effect_id)
        driven_by[link.effect_id].append(link.cause_id)
    return StrategyMap(
        objectives=[
            ObjectiveNode(
                id=o.objective_id,
                name=o.name,
                description=o.description,
                dimension=o.dimension,
                # A private KPI of another partner is not even named here.
                kpi_ids=[k for k in o.kpi_ids if k in visible],
                drives=drives[o.objective_id],
                driven_by=driven_by[o.objective_id],
            )
            for o in sorted(objectives, key=lambda r: r.position)
        ]
    )
