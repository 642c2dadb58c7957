"""The strategy map: strategic objectives, each measured by KPIs, linked cause -> effect.
The map runs one way, from causes to effects: a link that would close a loop is refused."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar
from uuid import UUID

from pydantic import Field, model_validator

from concord.domain import Actor, LongText, Rejected, ShortText
from scorecard.domain.state import Body, Dimension, Objective, Scorecard, ScorecardEvent

MAX_OBJECTIVES = 100


class ObjectiveDefinition(Body):
    name: ShortText
    description: LongText | None = None
    dimension: Dimension
    kpi_ids: list[UUID] = Field(
        default_factory=list,
        max_length=20,
        description="The KPIs that measure it, each once",
        json_schema_extra={"uniqueItems": True},
    )

    @model_validator(mode="after")
    def _distinct(self) -> ObjectiveDefinition:
        if len(set(self.kpi_ids)) != len(self.kpi_ids):
            raise ValueError("each KPI may be named once")
        return self


class ObjectiveLink(Body):
    cause_id: UUID = Field(description="The objective that drives...")
    effect_id: UUID = Field(description="...this one")


@dataclass(frozen=True)
class DefineObjective:
    objective_id: UUID
    definition: ObjectiveDefinition
    by: Actor


@dataclass(frozen=True)
class LinkObjectives:
    link: ObjectiveLink
    by: Actor


class ObjectiveDefined(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    objective_id: UUID
    name: str
    description: str | None
    dimension: Dimension
    kpi_ids: list[UUID]


class ObjectivesLinked(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    cause_id: UUID
    effect_id: UUID


class ObjectiveMeasuredPrivately(ScorecardEvent):
    """On a partner's private scorecard: its private KPIs that measure a shared objective,
    named there and not on the shared scorecard's `ObjectiveDefined` (ADR 0009)."""

    objective_id: UUID
    kpi_ids: list[UUID]


StrategyEvent = ObjectiveDefined | ObjectivesLinked | ObjectiveMeasuredPrivately


def define_objective(state: Scorecard, command: DefineObjective) -> list[ScorecardEvent]:
    d, by = command.definition, command.by
    if len(state.objectives) >= MAX_OBJECTIVES:
        raise Rejected(f"A scorecard has at most {MAX_OBJECTIVES} objectives")
    if any(o.name.casefold() == d.name.casefold() for o in state.objectives.values()):
        raise Rejected(f"There is already an objective named {d.name!r}", field_name="name")
    for kpi_id in d.kpi_ids:
        measure = state.kpis.get(kpi_id)
        if measure is None or not measure.visible_to(by.org):
            raise Rejected(f"No KPI {kpi_id} on this scorecard", field_name="kpi_ids")
    return [
        ObjectiveDefined(
            objective_id=command.objective_id,
            name=d.name,
            description=d.description,
            dimension=d.dimension,
            kpi_ids=list(d.kpi_ids),
        )
    ]


def link_objectives(state: Scorecard, command: LinkObjectives) -> list[ScorecardEvent]:
    link = command.link
    for name, objective_id in (("cause_id", link.cause_id), ("effect_id", link.effect_id)):
        if objective_id not in state.objectives:
            raise Rejected(f"No objective {objective_id} on this scorecard", field_name=name)
    if link.cause_id == link.effect_id:
        raise Rejected("An objective cannot drive itself", field_name="effect_id")
    if (link.cause_id, link.effect_id) in state.links:
        return []
    if state.effect_reaches(link.effect_id, link.cause_id):
        raise Rejected(
            "That link would close a loop: the strategy map runs from causes to effects",
            field_name="effect_id",
        )
    return [ObjectivesLinked(cause_id=link.cause_id, effect_id=link.effect_id)]


def evolve(state: Scorecard, event: StrategyEvent) -> Scorecard:
    if isinstance(event, ObjectiveMeasuredPrivately):
        measured = {**state.measured_privately, event.objective_id: tuple(event.kpi_ids)}
        return replace(state, measured_privately=measured)
    if isinstance(event, ObjectiveDefined):
        objective = Objective(event.objective_id, event.name, tuple(event.kpi_ids))
        return replace(state, objectives={**state.objectives, event.objective_id: objective})
    return replace(state, links=state.links | {(event.cause_id, event.effect_id)})
