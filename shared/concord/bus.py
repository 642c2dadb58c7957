"""NATS JetStream: one stream per service (`CONCORD_<SERVICE>`, subjects `concord.<service>.>`),
file storage, explicit acks. PostgreSQL stays the source of truth; the bus only carries.

Each service connects as a NATS user of its own (`service_permissions`): it may publish only
its own events, create and update only its own stream, and follow only the streams it reads,
so what a projection reads on `concord.<service>.>` came with that service's credentials."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from concord.events import CloudEvent

log = logging.getLogger(__name__)


def stream_name(service: str) -> str:
    return f"CONCORD_{service.upper()}"


def stream_subjects(service: str) -> list[str]:
    return [f"concord.{service}.>"]


def service_permissions(service: str, reads: Iterable[str]) -> dict[str, list[str]]:
    """What `service`'s NATS user may publish and subscribe to: its events, its own stream's
    management, and the JetStream API of durable pull consumers on the streams it reads
    (replies come back on the connection's inbox)."""
    own = stream_name(service)
    publish = [
        *stream_subjects(service),
        "$JS.API.INFO",
        f"$JS.API.STREAM.CREATE.{own}",
        f"$JS.API.STREAM.UPDATE.{own}",
    ]
    for source in sorted({service, *reads}):
        stream = stream_name(source)
        publish += [
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.CONSUMER.*.{stream}",  # an ephemeral consumer (a rebuild's replay)
            f"$JS.API.CONSUMER.*.{stream}.>",  # create, info, delete a named one
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
            f"$JS.ACK.{stream}.>",
        ]
    return {"publish": publish, "subscribe": ["_INBOX.>"]}


class Bus:
    """A reconnecting JetStream client. Commands never wait for it: if NATS is down the relay
    holds events in PostgreSQL and publishes them when the connection comes back."""

    def __init__(
        self,
        url: str,
        *,
        owner: str,
        user: str | None = None,
        password: str | None = None,
        replicas: int = 1,
        duplicate_window: float = 3600.0,
    ) -> None:
        self.url = url
        self.owner = owner  # the service whose stream this connection may create and feed
        self.user = user
        self.password = password
        self.replicas = replicas
        self.duplicate_window = duplicate_window
        self._nc: Client | None = None
        self._connected = asyncio.Event()
        self._ensured: set[str] = set()
        self._closing = False

    async def connect(self) -> None:
        """Connect, retrying until NATS answers (the first connection may find it down)."""
        delay = 0.1
        while self._nc is None:
            try:
                self._nc = await nats.connect(
                    self.url,
                    name=f"concord-{self.owner}",
                    user=self.user,
                    password=self.password,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    disconnected_cb=self._disconnected,
                    error_cb=self._error,
                    reconnected_cb=self._reconnected,
                )
            except Exception as error:  # nats raises several kinds here
                log.warning("NATS not reachable at %s (%s); retrying", self.url, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._connected.set()

    async def _error(self, error: Exception) -> None:
        log.warning("NATS: %s", error or type(error).__name__)

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS connection lost")

    async def _reconnected(self) -> None:
        log.info("NATS connection restored")

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def js(self) -> JetStreamContext:
        if self._nc is None:
            raise RuntimeError("bus not connected")
        return self._nc.jetstream(timeout=5)

    def stream_config(self, service: str) -> StreamConfig:
        return StreamConfig(
            name=stream_name(service),
            subjects=stream_subjects(service),
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
        )

    async def ensure_stream(self, service: str) -> bool:
        """Create or update the owner's own stream; another service's stream only has to
        exist (False if its owner has not made it within a moment: only the owner may)."""
        if service in self._ensured:
            return True
        try:
            await self._stream_made(service)
        except NotFoundError:
            if service != self.owner:
                log.info("waiting for %s to create its stream", service)
                return False
            try:
                await self.js.add_stream(self.stream_config(service))
            except BadRequestError:  # created meanwhile by another replica
                await self.js.update_stream(self.stream_config(service))
        else:
            if service == self.owner:
                await self.js.update_stream(self.stream_config(service))
        self._ensured.add(service)
        return True

    async def _stream_made(self, service: str) -> None:
        """The stream's info; another service's stream is looked for again for a moment (two
        services starting together: the owner's relay makes it within milliseconds)."""
        looks = 1 if service == self.owner else 40
        for look in range(1, looks + 1):
            try:
                await self.js.stream_info(stream_name(service))
                return
            except NotFoundError:
                if look == looks:
                    raise
                await asyncio.sleep(0.05)

    def forget_streams(self) -> None:
        """After a failure, check the streams again: one may have been deleted or lost."""
        self._ensured.clear()

    async def publish_all(self, events: list[CloudEvent]) -> None:
        """Publish in order and wait for every ack. `Nats-Msg-Id` = event id, so a repeat
        of an already stored event (a relay restarted mid-batch) is dropped by JetStream."""
        js = self.js
        acks = [
            await js.publish_async(
                event.type, event.to_json(), headers={"Nats-Msg-Id": str(event.id)}
            )
            for event in events
        ]
        await asyncio.wait_for(asyncio.gather(*acks), timeout=10)

    async def durable(
        self,
        service: str,
        durable: str,
        subjects: Sequence[str],
        *,
        after: int,
        max_ack_pending: int,
    ) -> JetStreamContext.PullSubscription:
        """A pull subscription on a durable consumer of `service`'s stream that resumes right
        after stream sequence `after` (the follower's checkpoint in PostgreSQL, the truth).
        The consumer is only a cursor: it is re-created whenever it delivered past the
        checkpoint or holds unacknowledged deliveries (a leader died holding them: they would
        wait out ack_wait), or was left ahead of the checkpoint by a rebuild."""
        js = self.js
        stream = stream_name(service)
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            info = None
        delivered = (info.delivered.stream_seq or 0) if info and info.delivered else 0
        if info is None or delivered > after or info.num_ack_pending:
            if info is not None:
                await js.delete_consumer(stream, durable)
            await js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=durable,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=after + 1,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=30,
                    max_ack_pending=max_ack_pending,
                    filter_subjects=list(subjects),
                ),
            )
        return await js.pull_subscribe_bind(durable=durable, stream=stream)

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except Exception:
                await self._nc.close()
        self._nc = None
        self._connected.clear()
        self._ensured.clear()
        self._closing = False
