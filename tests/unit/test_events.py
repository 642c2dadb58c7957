"""The CloudEvents envelope and the registry that reads old payload versions today."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import uuid4

import pytest

from concord.domain import Actor, DomainEvent
from concord.events import CloudEvent, EventRegistry
from concord.membership import CHARTER, PartnerAdded, PartnerOrganisation


class TrustPulseClosed(DomainEvent):
    aggregate: ClassVar[str] = "trust_pulse"
    schema_version: ClassVar[int] = 2
    respondents: int
    closed_by_org: str


def test_an_event_travels_as_a_structured_cloudevent_with_concord_extensions() -> None:
    registry = EventRegistry("trust_survey")
    registry.register(TrustPulseClosed)
    alliance_id = str(uuid4())
    envelope = registry.envelope(
        TrustPulseClosed(respondents=7, closed_by_org="acme"),
        stream_id="trust-pulse-1",
        stream_version=4,
        alliance_id=alliance_id,
        correlation_id="req-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    wire = CloudEvent.from_json(envelope.to_json())
    assert wire == envelope
    assert wire.specversion == "1.0"
    assert wire.type == "concord.trust_survey.trust_pulse.trust_pulse_closed.v2"
    assert wire.source == "/concord/trust_survey"
    assert (wire.subject, wire.streamversion, wire.allianceid) == ("trust-pulse-1", 4, alliance_id)
    assert registry.decode(wire) == TrustPulseClosed(respondents=7, closed_by_org="acme")


def test_an_old_payload_is_upcast_to_the_version_the_code_speaks() -> None:
    registry = EventRegistry("trust_survey")
    registry.register(TrustPulseClosed)

    @registry.upcaster(TrustPulseClosed, from_version=1)
    def _add_closer(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "closed_by_org": "unknown"}

    v1 = CloudEvent(
        id=uuid4(),
        source="/concord/trust_survey",
        type="concord.trust_survey.trust_pulse.trust_pulse_closed.v1",
        subject="trust-pulse-1",
        time="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        data={"respondents": 3},
        streamversion=1,
    )
    assert registry.decode(v1) == TrustPulseClosed(respondents=3, closed_by_org="unknown")


def test_an_unknown_or_unupcastable_event_is_refused_loudly() -> None:
    registry = EventRegistry("trust_survey")
    registry.register(TrustPulseClosed)
    base = dict(
        id=uuid4(),
        source="/concord/trust_survey",
        subject="s",
        time="2026-01-01T00:00:00Z",
        data={"respondents": 3},
        streamversion=1,
    )
    with pytest.raises(KeyError, match="no upcaster"):
        registry.decode(
            CloudEvent(type="concord.trust_survey.trust_pulse.trust_pulse_closed.v1", **base)
        )  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown event type"):
        registry.decode(CloudEvent(type="concord.trust_survey.trust_pulse.reopened.v1", **base))  # type: ignore[arg-type]


def test_who_caused_an_event_travels_in_the_envelope() -> None:
    registry = EventRegistry("trust_survey")
    registry.register(TrustPulseClosed)
    alice = Actor(sub="alice", org="acme", roles=frozenset({"alliance_manager"}))
    envelope = registry.envelope(
        TrustPulseClosed(respondents=7, closed_by_org="acme"),
        stream_id="trust-pulse-1",
        stream_version=1,
        alliance_id=None,
        actor=alice,
        causation_id="req-9",
    )
    wire = CloudEvent.from_json(envelope.to_json())
    assert (wire.actorsub, wire.actororg, wire.causationid) == ("alice", "acme", "req-9")
    recorded = registry.recorded(wire)
    assert recorded.actor == Actor(sub="alice", org="acme")  # roles are not recorded
    assert recorded.stream_version == 1


def test_concord_itself_is_an_actor_without_an_organisation() -> None:
    registry = EventRegistry("trust_survey")
    registry.register(TrustPulseClosed)
    envelope = registry.envelope(
        TrustPulseClosed(respondents=7, closed_by_org="acme"),
        stream_id="s",
        stream_version=1,
        alliance_id=None,
        actor=Actor.system("trust_survey/timer"),
    )
    assert (envelope.actorsub, envelope.actororg) == ("trust_survey/timer", None)
    assert registry.recorded(envelope).actor == Actor.system("trust_survey/timer")


def test_an_event_that_named_its_actor_in_the_payload_says_so_from_the_envelope() -> None:
    v1 = CloudEvent(
        id=uuid4(),
        source="/concord/governance",
        type="concord.governance.alliance.partner_added.v1",
        subject="alliance-1",
        time="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        data={
            "partner": {"org_id": "initech", "name": "Initech"},
            "added_by_org": "acme",
            "added_by": "alice",
        },
        streamversion=2,
    )
    recorded = CHARTER.recorded(v1)
    assert recorded.event == PartnerAdded(
        partner=PartnerOrganisation(org_id="initech", name="Initech")
    )
    assert recorded.actor == Actor(sub="alice", org="acme")
    assert recorded.envelope.type == "concord.governance.alliance.partner_added.v2"
