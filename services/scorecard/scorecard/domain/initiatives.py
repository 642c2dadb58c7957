"""Initiatives: the joint work (typically about a dozen) each owned by one partner
organisation and one accountable person, with a leading indicator and a due date. Only the
owner reports progress, never as of an earlier day than the last report."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field, model_validator

from concord.domain import Actor, Day, Forbidden, LongText, NotFound, OrgId, Rejected, ShortText
from scorecard.domain.state import Body, Dimension, Initiative, Scorecard, ScorecardEvent

MAX_INITIATIVES = 100


class InitiativeStatus(StrEnum):
    planned = "planned"
    in_progress = "in_progress"
    at_risk = "at_risk"
    blocked = "blocked"
    done = "done"


class InitiativePlan(Body):
    name: ShortText
    description: LongText | None = None
    dimension: Dimension
    owner_org: OrgId
    owner_name: ShortText = Field(description="The person accountable for it")
    leading_indicator: ShortText = Field(description="What shows early that it works")
    due_date: Day


class InitiativeProgress(Body):
    """Where an initiative stands: a done initiative is 100 % complete, so `status` `done`
    needs `completion` 100."""

    completion: int = Field(ge=0, le=100, description="Percent complete")
    status: InitiativeStatus
    as_of: Day
    note: ShortText | None = None

    @model_validator(mode="after")
    def _done_is_complete(self) -> InitiativeProgress:
        if self.status is InitiativeStatus.done and self.completion != 100:
            raise ValueError("a done initiative is 100% complete")
        return self


@dataclass(frozen=True)
class LaunchInitiative:
    initiative_id: UUID
    plan: InitiativePlan
    partners: tuple[str, ...]  # the alliance's partners now: one of them owns it
    by: Actor


@dataclass(frozen=True)
class UpdateInitiativeProgress:
    initiative_id: UUID
    progress: InitiativeProgress
    by: Actor


class InitiativeLaunched(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    initiative_id: UUID
    name: str
    description: str | None
    dimension: Dimension
    owner_org: str
    owner_name: str
    leading_indicator: str
    due_date: date


class InitiativeProgressUpdated(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    initiative_id: UUID
    completion: int
    status: InitiativeStatus
    as_of: date
    note: str | None
    previous_completion: int


InitiativeEvent = InitiativeLaunched | InitiativeProgressUpdated


def launch(state: Scorecard, command: LaunchInitiative) -> list[ScorecardEvent]:
    p = command.plan
    if len(state.initiatives) >= MAX_INITIATIVES:
        raise Rejected(f"A scorecard has at most {MAX_INITIATIVES} initiatives")
    if p.owner_org not in command.partners:
        raise Rejected(f"{p.owner_org} is not a partner", field_name="owner_org")
    if any(i.name.casefold() == p.name.casefold() for i in state.initiatives.values()):
        raise Rejected(f"There is already an initiative named {p.name!r}", field_name="name")
    return [
        InitiativeLaunched(
            initiative_id=command.initiative_id,
            name=p.name,
            description=p.description,
            dimension=p.dimension,
            owner_org=p.owner_org,
            owner_name=p.owner_name,
            leading_indicator=p.leading_indicator,
            due_date=p.due_date,
        )
    ]


def update_progress(state: Scorecard, command: UpdateInitiativeProgress) -> list[ScorecardEvent]:
    p = command.progress
    initiative = state.initiatives.get(command.initiative_id)
    if initiative is None:
        raise NotFound("No such initiative on this scorecard")
    if initiative.owner_org != command.by.org:
        raise Forbidden(f"Only {initiative.owner_org}, which owns it, reports its progress")
    if initiative.as_of is not None and p.as_of < initiative.as_of:
        raise Rejected(
            f"Progress is already reported as of {initiative.as_of.isoformat()}",
            field_name="as_of",
        )
    return [
        InitiativeProgressUpdated(
            initiative_id=command.initiative_id,
            completion=p.completion,
            status=p.status,
            as_of=p.as_of,
            note=p.note,
            previous_completion=initiative.completion,
        )
    ]


def evolve(state: Scorecard, event: InitiativeEvent) -> Scorecard:
    if isinstance(event, InitiativeLaunched):
        initiative = Initiative(event.initiative_id, event.name, event.owner_org)
    else:
        initiative = replace(
            state.initiatives[event.initiative_id], completion=event.completion, as_of=event.as_of
        )
    return replace(state, initiatives={**state.initiatives, event.initiative_id: initiative})
