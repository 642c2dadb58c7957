"""What a projection takes in: each stream's events once and in version order, whatever order
JetStream holds them in; a jump in version, a message that does not decode, one from another
service and one whose data this code cannot read are parked, and the projection goes on; a
valid event whose `apply` fails stops it, at that message, and says so.

These drive the kernel's `alliances` projection (every runtime has it) of governance's charter
events published by hand, as governance's relay would (or would not)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY as METRICS

from concord import ops
from concord.bus import stream_name
from concord.domain import NotFound
from concord.events import CloudEvent
from concord.membership import (
    CHARTER,
    AllianceCreated,
    Alliances,
    PartnerAdded,
    PartnerOrganisation,
    charter_stream,
)
from concord.problems import ProblemError
from concord.projections import ProjectionRunner, ReadModel
from concord.runtime import ServiceRuntime
from tests.conftest import Stack, nats_as
from tests.integration.meters import eventually

CREATED = "concord.governance.alliance.alliance_created.v2"
ADDED = "concord.governance.alliance.partner_added.v2"


class Charter:
    """Governance's side, by hand: charter events as its relay publishes them."""

    def __init__(self, nc: Any) -> None:
        self.js = nc.jetstream()

    async def publish(self, subject: str, data: bytes) -> int:
        ack = await self.js.publish(subject, data, headers={"Nats-Msg-Id": str(uuid4())})
        return int(ack.seq)

    async def event(self, event: Any, alliance: UUID, version: int, **envelope: Any) -> int:
        stream = charter_stream(alliance)
        cloud = CHARTER.envelope(
            event, stream_id=stream, stream_version=version, alliance_id=str(alliance)
        ).model_copy(update=envelope)
        return await self.publish(cloud.type, cloud.to_json())

    async def created(self, alliance: UUID, *orgs: str) -> int:
        partners = [PartnerOrganisation(org_id=o, name=o.title()) for o in orgs]
        created = AllianceCreated(
            alliance_id=alliance, name="A", purpose="P", goals=["G1", "G2"], partners=partners
        )
        return await self.event(created, alliance, 1)

    async def added(self, alliance: UUID, org: str, version: int) -> int:
        added = PartnerAdded(partner=PartnerOrganisation(org_id=org, name=org.title()))
        return await self.event(added, alliance, version)

    async def messages(self) -> list[Msg]:
        """Every message in governance's stream, in stream order."""
        sub = await self.js.pull_subscribe(
            "concord.governance.>",
            stream=stream_name("governance"),
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30),
        )
        try:
            return list(await sub.fetch(1000, timeout=2))
        finally:
            await sub.unsubscribe()


@pytest.fixture
async def charter(runtime: ServiceRuntime, stack: Stack) -> AsyncIterator[Charter]:
    """Publishing as governance's relay does, with governance's NATS user."""
    await runtime.bus.connect()
    nc = await nats_as(stack, "governance")
    await nc.jetstream().add_stream(runtime.bus.stream_config("governance"))
    yield Charter(nc)
    await nc.close()


async def apply_one_by_one(runtime: ServiceRuntime, msgs: list[Msg]) -> None:
    """As the live runner would if each message came in a batch of its own."""
    runner = runtime.runners["alliances"]
    async with runtime.engine.connect() as conn:
        for msg in msgs:
            await runner.apply_batch(conn, [msg])


async def partners(runtime: ServiceRuntime, alliance: UUID) -> tuple[tuple[str, ...], int]:
    known = await runtime.alliances.known(runtime, alliance, "acme")
    return known.partner_orgs, known.version


async def parked(runtime: ServiceRuntime) -> dict[int, str]:
    return {m.sequence: m.reason for m in (await ops.parked(runtime)).messages}


def parked_total(reason: str) -> float:
    labels = {"service": "kerneltest", "projection": "alliances", "reason": reason}
    return METRICS.get_sample_value("concord_projection_parked_total", labels) or 0.0


async def test_a_stream_stored_out_of_order_is_applied_in_version_order(
    runtime: ServiceRuntime, charter: Charter
) -> None:
    """The relay's pipelined publishes can store k+1 before k (ADR 0002): that is held, not
    parked for good, and applied right after k, in whichever batch k comes."""
    alliance, other = uuid4(), uuid4()
    await charter.created(alliance, "acme", "globex")
    await charter.added(alliance, "umbrella", 3)
    await charter.created(other, "acme", "initech")
    await charter.added(alliance, "hooli", 2)

    await apply_one_by_one(runtime, await charter.messages())

    assert await partners(runtime, alliance) == (("acme", "globex", "hooli", "umbrella"), 3)
    assert await partners(runtime, other) == (("acme", "initech"), 1)
    assert await parked(runtime) == {}


async def test_a_jump_in_version_is_parked_never_applied_and_its_stream_goes_on(
    runtime: ServiceRuntime, charter: Charter
) -> None:
    alliance = uuid4()
    await charter.created(alliance, "acme", "globex")
    forged = await charter.added(alliance, "initech", 999)
    await charter.added(alliance, "umbrella", 2)

    await apply_one_by_one(runtime, await charter.messages())

    assert await partners(runtime, alliance) == (("acme", "globex", "umbrella"), 2)
    with pytest.raises(NotFound):
        await runtime.alliances.known(runtime, alliance, "initech")
    [message] = (await ops.parked(runtime)).messages
    assert (message.sequence, message.reason, message.stream_version) == (forged, "ahead", 999)
    assert "came after 1" in message.error


async def test_a_republished_event_changes_nothing(
    runtime: ServiceRuntime, charter: Charter
) -> None:
    """Republished past JetStream's duplicate window: a new stream sequence, a version seen."""
    alliance = uuid4()
    await charter.created(alliance, "acme", "globex")
    await charter.added(alliance, "umbrella", 2)
    msgs = await charter.messages()
    await charter.publish(msgs[1].subject, msgs[1].data)
    await charter.publish(msgs[0].subject, msgs[0].data)

    await apply_one_by_one(runtime, await charter.messages())

    assert await partners(runtime, alliance) == (("acme", "globex", "umbrella"), 2)
    assert await parked(runtime) == {}


async def test_what_no_relay_published_is_parked_and_the_projection_goes_on(
    runtime: ServiceRuntime, charter: Charter
) -> None:
    alliance, later = uuid4(), uuid4()
    before = {r: parked_total(r) for r in ("unreadable", "foreign", "invalid")}
    await charter.created(alliance, "acme", "globex")
    garbage = await charter.publish(ADDED, b"\xff{not json")
    not_an_event = await charter.publish(ADDED, b'{"hello": "world"}')
    elsewhere = await charter.event(
        PartnerAdded(partner=PartnerOrganisation(org_id="x", name="X")),
        alliance,
        2,
        source="/concord/scorecard",
    )
    wrong_subject = await charter.publish(
        CREATED,
        (await charter.messages())[0].data.replace(b"alliance_created", b"partner_added"),
    )
    cloud = CloudEvent.from_json((await charter.messages())[0].data)
    unreadable_data = await charter.publish(
        ADDED,
        cloud.model_copy(
            update={"id": uuid4(), "type": ADDED, "streamversion": 2, "data": {"partner": 1}}
        ).to_json(),
    )
    await charter.created(later, "acme", "hooli")
    await charter.added(alliance, "umbrella", 2)

    await apply_one_by_one(runtime, await charter.messages())

    assert await parked(runtime) == {
        garbage: "unreadable",
        not_an_event: "unreadable",
        elsewhere: "foreign",
        wrong_subject: "foreign",
        unreadable_data: "invalid",
    }
    assert await partners(runtime, later) == (("acme", "hooli"), 1)
    # The invalid event was version 2: the real version 2 is next, and applies.
    assert await partners(runtime, alliance) == (("acme", "globex", "umbrella"), 2)
    async with runtime.engine.connect() as conn:
        assert await runtime.runners["alliances"].checkpoint(conn) == 8
    assert parked_total("unreadable") == before["unreadable"] + 2
    assert parked_total("foreign") == before["foreign"] + 2
    assert parked_total("invalid") == before["invalid"] + 1
    assert (await runtime.count_parked())["projection"] == 5


async def test_an_invalid_event_holds_its_stream_until_an_operator_drops_it(
    runtime: ServiceRuntime, charter: Charter
) -> None:
    """Say governance published data this code cannot read: that alliance waits (its later
    events are held behind it), the others flow; dropping it lets the alliance move on."""
    alliance, other = uuid4(), uuid4()
    await charter.created(alliance, "acme", "globex")
    cloud = CloudEvent.from_json((await charter.messages())[0].data)
    invalid = await charter.publish(
        ADDED,
        cloud.model_copy(
            update={"id": uuid4(), "type": ADDED, "streamversion": 2, "data": {"who": "?"}}
        ).to_json(),
    )
    held = await charter.added(alliance, "umbrella", 3)
    await charter.created(other, "acme", "initech")
    await apply_one_by_one(runtime, await charter.messages())
    assert await partners(runtime, alliance) == (("acme", "globex"), 1)
    assert await partners(runtime, other) == (("acme", "initech"), 1)
    assert await parked(runtime) == {invalid: "invalid", held: "ahead"}

    with pytest.raises(ProblemError) as still:
        await ops.settle_message(runtime, "alliances", invalid, drop=False)
    assert (still.value.status, still.value.slug) == (409, "still-parked")
    dropped = await ops.settle_message(runtime, "alliances", invalid, drop=True)
    assert dropped.outcome == "dropped"

    assert await partners(runtime, alliance) == (("acme", "globex", "umbrella"), 3)
    assert await parked(runtime) == {}
    with pytest.raises(NotFound):
        await ops.settle_message(runtime, "alliances", invalid, drop=True)
    # A rebuild replays the stream through the same intake: the dropped message stays dropped.
    report = await runtime.runners["alliances"].rebuild(progress=False)
    assert report.events == 3
    assert await partners(runtime, alliance) == (("acme", "globex", "umbrella"), 3)
    assert await parked(runtime) == {}


class Fragile(Alliances):
    """The alliances projection with a bug: it cannot apply a partner called "bug"."""

    fixed = False

    async def apply(self, model: ReadModel, recorded: Any) -> None:
        event = recorded.event
        if isinstance(event, PartnerAdded) and event.partner.org_id == "bug" and not self.fixed:
            raise RuntimeError("cannot apply this partner")
        await super().apply(model, recorded)


async def test_a_failing_apply_stops_the_projection_at_that_message_and_says_so(
    runtime: ServiceRuntime, charter: Charter
) -> None:
    alliance = uuid4()
    fragile = Fragile(runtime.schema)
    runner = ProjectionRunner(
        runtime.engine, runtime.bus, fragile, service="kerneltest", schema=runtime.schema
    )
    runtime.runners["alliances"] = runner  # what /ops and settle find
    await charter.created(alliance, "acme", "globex")
    await charter.added(alliance, "umbrella", 2)
    bad = await charter.added(alliance, "bug", 3)
    await charter.added(alliance, "hooli", 4)

    following = asyncio.create_task(runner.run())
    try:
        stopped = await eventually(lambda: _stopped(runtime))
        assert (stopped.projection, stopped.sequence) == ("alliances", bad)
        assert "cannot apply this partner" in stopped.error
        assert stopped.last_sequence == bad - 1  # everything before it is applied
        assert await partners(runtime, alliance) == (("acme", "globex", "umbrella"), 2)
        assert await parked(runtime) == {}  # a valid event is never parked

        fragile.fixed = True  # the bug fixed and deployed: it resumes from there
        await eventually(lambda: _version_is(runtime, alliance, 4), timeout=20)
        assert (await ops.parked(runtime)).stopped == []
    finally:
        runner.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(following, 10)


async def _stopped(runtime: ServiceRuntime) -> ops.StoppedProjection | None:
    stopped = (await ops.parked(runtime)).stopped
    return stopped[0] if stopped else None


async def _version_is(runtime: ServiceRuntime, alliance: UUID, version: int) -> bool:
    return (await partners(runtime, alliance))[1] == version
