"""What scorecard does with nobody calling its API: when a KPI's actual is overdue (a timer,
on the stream the KPI lives on, shared or private), when governance adds a partner to the
alliance (a reaction), and when the partners change the thresholds (a reaction to
scorecard's own event: each partner's private scorecard adopts them, ADR 0009)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from concord import commands
from concord.events import Recorded
from concord.membership import CHARTER, PartnerAdded
from concord.reactions import Reaction
from concord.timers import DueTimer, Timer
from scorecard.domain.benefits import WelcomePartner
from scorecard.domain.events import EVENT_REGISTRY
from scorecard.domain.missing_actuals import ACTUAL_DUE, NoteMissingActual
from scorecard.domain.partner_view import adopt, private_stream_id
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


async def _adopt_thresholds(tx: commands.Transaction, recorded: Recorded[Any]) -> None:
    """Each partner's private scorecard judges its KPIs by the new thresholds at once, though
    nobody of that partner asks; one with no KPIs has nothing to judge. The shared
    scorecard's thresholds now are adopted, not the event's: by value, so this and a
    partner's own command agree whatever order they run in."""
    alliance_id = recorded.alliance_id
    assert alliance_id is not None
    shared = await tx.stream(scorecard, stream_id(alliance_id), alliance_id)
    known = await tx.runtime.alliances.partners(tx.conn, alliance_id)
    for org in dict.fromkeys((*shared.state.partners, *known)):
        private = await tx.stream(scorecard, private_stream_id(alliance_id, org), alliance_id)
        await private.append(adopt(private.state, shared.state.thresholds))


TIMERS = [Timer(name=ACTUAL_DUE, fire=_note_missing_actual)]
REACTIONS = [
    Reaction(
        name="partner_joins_balance",
        events=CHARTER,
        subjects=("concord.governance.alliance.partner_added.*",),
        handle=_welcome_partner,
    ),
    Reaction(
        name="private_scorecards_adopt_thresholds",
        events=EVENT_REGISTRY,
        subjects=("concord.scorecard.scorecard.scorecard_thresholds_changed.*",),
        handle=_adopt_thresholds,
    ),
]
