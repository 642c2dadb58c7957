"""What scorecard does with nobody calling its API: when a KPI's actual is overdue (a timer),
and when governance adds a partner to the alliance (a reaction)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from concord import commands
from concord.events import Recorded
from concord.membership import CHARTER, PartnerAdded
from concord.reactions import Reaction
from concord.timers import DueTimer, Timer
from scorecard.domain.benefits import WelcomePartner
from scorecard.domain.missing_actuals import ACTUAL_DUE, NoteMissingActual
from scorecard.domain.scorecard import scorecard, stream_id


async def _note_missing_actual(tx: commands.Transaction, timer: DueTimer) -> None:
    """The KPI's period ended and its grace days passed: say so if no actual came."""
    command = NoteMissingActual(UUID(timer.data["kpi_id"]), timer.data["period"])
    await commands.decide_on(tx, scorecard, timer.stream_id, timer.alliance_id, command)


async def _welcome_partner(tx: commands.Transaction, recorded: Recorded[Any]) -> None:
    """A partner added in governance joins the balance of benefits (with nothing gained yet)."""
    event = recorded.event
    assert isinstance(event, PartnerAdded) and recorded.alliance_id is not None
    command = WelcomePartner(event.partner.org_id)
    alliance_id = recorded.alliance_id
    await commands.decide_on(tx, scorecard, stream_id(alliance_id), alliance_id, command)


TIMERS = [Timer(name=ACTUAL_DUE, fire=_note_missing_actual)]
REACTIONS = [
    Reaction(
        name="partner_joins_balance",
        events=CHARTER,
        subjects=("concord.governance.alliance.partner_added.*",),
        handle=_welcome_partner,
    )
]
