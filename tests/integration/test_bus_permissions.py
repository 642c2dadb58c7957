"""Who may do what on NATS: each service connects as its own user and may publish only its
own events, manage only its own stream and follow only the streams it reads; nobody connects
without a user. The test stack's NATS is configured as `make run`'s is (`concord.embedded`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import nats
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout

from concord.bus import Bus, stream_name
from concord.membership import CHARTER, PartnerAdded, PartnerOrganisation
from tests.conftest import NATS_PASSWORDS, Stack, nats_as

ADDED = "concord.governance.alliance.partner_added.v2"


def partner_added_for_a_stranger() -> bytes:
    """What the review published by hand: a stranger made a partner, far ahead in version."""
    event = PartnerAdded(partner=PartnerOrganisation(org_id="initech", name="Initech"))
    alliance = uuid4()
    envelope = CHARTER.envelope(
        event, stream_id=f"alliance-{alliance}", stream_version=999, alliance_id=str(alliance)
    )
    return envelope.to_json()


@pytest.fixture
async def streams(nats_url: str, stack: Stack) -> AsyncIterator[None]:
    """Governance's and scorecard's streams, made by their owners."""
    for service in ("governance", "scorecard"):
        bus = Bus(nats_url, owner=service, user=service, password=NATS_PASSWORDS[service])
        await bus.connect()
        assert await bus.ensure_stream(service)
        await bus.close()
    yield


async def stored(stack: Stack, service: str) -> int:
    admin = await nats_as(stack)
    try:
        return int((await admin.jetstream().stream_info(stream_name(service))).state.messages)
    finally:
        await admin.close()


async def connected_as(stack: Stack, user: str) -> Client:
    return await nats_as(stack, user)


async def test_a_service_cannot_publish_on_another_services_subjects(
    stack: Stack, streams: None
) -> None:
    scorecard = await connected_as(stack, "scorecard")
    try:
        js = scorecard.jetstream()
        with pytest.raises(NatsTimeout):  # the server refuses it: no ack ever comes
            await js.publish(ADDED, partner_added_for_a_stranger(), timeout=1)
        own = await js.publish("concord.scorecard.scorecard.scorecard_opened.v1", b"{}")
        assert own.stream == stream_name("scorecard")
    finally:
        await scorecard.close()
    assert await stored(stack, "governance") == 0
    assert await stored(stack, "scorecard") == 1


async def test_a_service_cannot_change_another_services_stream_or_follow_what_it_does_not_read(
    stack: Stack, streams: None
) -> None:
    governance = await connected_as(stack, "governance")
    scorecard = await connected_as(stack, "scorecard")
    try:
        config = Bus(stack.nats.url, owner="scorecard").stream_config("governance")
        with pytest.raises(NatsTimeout):
            await scorecard.jetstream(timeout=1).update_stream(config)
        with pytest.raises(NatsTimeout):  # governance reads no scorecard events
            await governance.jetstream(timeout=1).pull_subscribe(
                "concord.scorecard.>", durable="spy", stream=stream_name("scorecard")
            )
        # Scorecard follows governance's charter: that it may.
        follows = await scorecard.jetstream(timeout=2).pull_subscribe(
            "concord.governance.>", durable="scorecard__test", stream=stream_name("governance")
        )
        await follows.unsubscribe()
    finally:
        await governance.close()
        await scorecard.close()


async def test_nobody_connects_without_a_user_or_with_a_wrong_password(stack: Stack) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(stack.nats.url, allow_reconnect=False, connect_timeout=2)
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(
            stack.nats.url,
            user="governance",
            password="guessed",
            allow_reconnect=False,
            connect_timeout=2,
        )
