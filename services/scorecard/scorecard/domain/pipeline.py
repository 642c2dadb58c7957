"""What a partner's CRM tells the scorecard: pipeline events, and the KPI metrics they feed.

Field mapping (the same table is in docs/scorecard.md):

- `opportunity.created` -> pipeline_value, month of `occurred_at`: + amount
- `opportunity.stage_changed` with a new amount -> pipeline_value, the month the opportunity
  was created: + (new amount - previous amount)
- `opportunity.closed_won` -> closed_won_revenue, month of `close_date`: + amount (a repeat
  for the same opportunity replaces the earlier amount)
- `opportunity.closed_lost` -> closed_won_revenue: - the won amount, if it had been won
- `proposal.submitted` -> proposals_submitted, month of `occurred_at`: + 1
- `key_account.agreed` -> key_accounts_agreed, month of `occurred_at`: + 1

Pipeline value is the value of new joint pipeline created in the period: it is additive, so
late and out-of-order events land in the right period whatever order they arrive in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from concord.domain import Day, DecimalNumber, Moment, ShortText

MAX_BATCH = 1000

CrmId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, DecimalNumber(digits=16, places=2)]


class Metric(StrEnum):
    pipeline_value = "pipeline_value"
    closed_won_revenue = "closed_won_revenue"
    proposals_submitted = "proposals_submitted"
    key_accounts_agreed = "key_accounts_agreed"

    @property
    def is_money(self) -> bool:
        return self in (Metric.pipeline_value, Metric.closed_won_revenue)


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: CrmId = Field(description="The CRM's own event id: a re-sent id changes nothing")
    occurred_at: Moment


class OpportunityCreatedItem(_Item):
    type: Literal["opportunity.created"]
    opportunity_id: CrmId
    account: ShortText
    amount: Money
    currency: Currency
    stage: ShortText
    close_date: Day = Field(description="The expected close date")


class OpportunityStageChangedItem(_Item):
    type: Literal["opportunity.stage_changed"]
    opportunity_id: CrmId
    stage: ShortText
    amount: Money | None = Field(default=None, description="The amount, if it changed")
    currency: Currency | None = None
    close_date: Day | None = None


class OpportunityClosedWonItem(_Item):
    type: Literal["opportunity.closed_won"]
    opportunity_id: CrmId
    account: ShortText | None = None
    amount: Money
    currency: Currency
    close_date: Day


class OpportunityClosedLostItem(_Item):
    type: Literal["opportunity.closed_lost"]
    opportunity_id: CrmId
    close_date: Day
    reason: ShortText | None = None


class ProposalSubmittedItem(_Item):
    type: Literal["proposal.submitted"]
    account: ShortText
    opportunity_id: CrmId | None = None


class KeyAccountAgreedItem(_Item):
    type: Literal["key_account.agreed"]
    account: ShortText


PipelineItem = Annotated[
    OpportunityCreatedItem
    | OpportunityStageChangedItem
    | OpportunityClosedWonItem
    | OpportunityClosedLostItem
    | ProposalSubmittedItem
    | KeyAccountAgreedItem,
    Field(discriminator="type"),
]


def month_of(moment: date | datetime) -> str:
    """The month a day or moment falls in; a moment is placed by its UTC date."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"
