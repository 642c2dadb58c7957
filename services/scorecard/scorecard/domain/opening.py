"""The scorecard itself: opened once per alliance, with the currency its benefits ledger is
kept in and the thresholds it judges by, which its partners may change later."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from concord.domain import Actor, Rejected
from scorecard.domain.pipeline import Currency
from scorecard.domain.rules import StatusThresholds
from scorecard.domain.state import Body, Scorecard, ScorecardEvent


class ScorecardSetup(Body):
    currency: Currency = Field(description="The currency the benefits ledger is kept in")
    thresholds: StatusThresholds = StatusThresholds()


@dataclass(frozen=True)
class OpenScorecard:
    alliance_id: UUID
    setup: ScorecardSetup
    partners: tuple[str, ...]  # the alliance's partner organisations, as governance says
    by: Actor


@dataclass(frozen=True)
class ChangeThresholds:
    thresholds: StatusThresholds
    by: Actor


class ScorecardOpened(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    alliance_id: UUID
    partners: list[str]  # the alliance's partners at opening: the balance is shared among them
    currency: str
    thresholds: StatusThresholds


class ScorecardThresholdsChanged(ScorecardEvent):
    schema_version: ClassVar[int] = 2
    thresholds: StatusThresholds
    # None on events recorded before v2, which did not say.
    previous_thresholds: StatusThresholds | None = None


class ThresholdsAdopted(ScorecardEvent):
    """A partner's private scorecard took up the thresholds the partners set on the shared
    one (ADR 0009), so its private KPIs are judged as every other KPI is."""

    thresholds: StatusThresholds
    previous_thresholds: StatusThresholds


# The events that set the thresholds a scorecard judges by, shared or private.
ThresholdsSet = ScorecardThresholdsChanged | ThresholdsAdopted
OpeningEvent = ScorecardOpened | ThresholdsSet


def open_scorecard(state: Scorecard, command: OpenScorecard) -> list[ScorecardEvent]:
    if state.exists:
        raise Rejected("This alliance's scorecard is already open")
    return [
        ScorecardOpened(
            alliance_id=command.alliance_id,
            partners=list(command.partners),
            currency=command.setup.currency,
            thresholds=command.setup.thresholds,
        )
    ]


def change_thresholds(state: Scorecard, command: ChangeThresholds) -> list[ScorecardEvent]:
    if command.thresholds == state.thresholds:
        return []
    return [
        ScorecardThresholdsChanged(
            thresholds=command.thresholds, previous_thresholds=state.thresholds
        )
    ]


def evolve(state: Scorecard, event: OpeningEvent) -> Scorecard:
    if isinstance(event, ScorecardThresholdsChanged | ThresholdsAdopted):
        return replace(state, thresholds=event.thresholds)
    return Scorecard(
        alliance_id=event.alliance_id,
        partners=tuple(event.partners),
        currency=event.currency,
        thresholds=event.thresholds,
    )
