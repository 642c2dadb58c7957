"""NATS JetStream: one stream per service (`CONCORD_<SERVICE>`, subjects `concord.<service>.>`),
file storage, explicit acks. PostgreSQL stays the source of truth; the bus only carries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

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


class Bus:
    """A reconnecting JetStream client. Commands never wait for it: if NATS is down the relay
    holds events in PostgreSQL and publishes them when the connection comes back."""

    def __init__(self, url: str, *, replicas: int = 1, duplicate_window: float = 3600.0) -> None:
        self.url = url
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
                    name="concord",
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

    async def ensure_stream(self, service: str) -> None:
        """Create or update the service's stream; any service may call it for any stream."""
        if service in self._ensured:
            return
        config = self.stream_config(service)
        try:
            await self.js.stream_info(stream_name(service))
            await self.js.update_stream(config)
        except NotFoundError:
            try:
                await self.js.add_stream(config)
            except BadRequestError:  # created meanwhile by another service
                await self.js.update_stream(config)
        self._ensured.add(service)

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
