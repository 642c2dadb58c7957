"""The CloudEvents 1.0 envelope every Concord event travels in, and the registry that turns
envelopes back into typed domain events (upcasting old schema versions on the way).

Who caused an event (`actorsub`, `actororg`) and why (`causationid`, `correlationid`) travel
in the envelope, beside the payload, never inside it: a payload says what happened.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from concord.domain import Actor, DomainEvent

TYPE_PATTERN = re.compile(
    r"^concord\.(?P<service>[a-z_]+)\.(?P<aggregate>[a-z_]+)\.(?P<name>[a-z_]+)\.v(?P<version>\d+)$"
)

E = TypeVar("E", bound=DomainEvent)
# Rewrites an envelope written at schema version v into one at v + 1 (the type's version
# is bumped by the registry): most change only `data`, some lift a field into the envelope.
Upcaster = Callable[["CloudEvent"], "CloudEvent"]


class CloudEvent(BaseModel):
    """A structured-mode CloudEvent with Concord's extensions (all lower-case, as the spec asks)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: UUID
    source: str
    type: str
    subject: str
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    allianceid: str | None = None
    streamversion: int
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    # Who caused it: a person (their `sub` and organisation) or, with no organisation,
    # Concord itself (a reaction or a timer, named in `actorsub`).
    actorsub: str | None = None
    actororg: str | None = None
    # The organisation an event on a private stream is kept for (absent on shared streams):
    # whatever delivers events to people delivers this one to that organisation only.
    privateto: str | None = Field(default=None, exclude_if=lambda org: org is None)

    @property
    def actor(self) -> Actor | None:
        if self.actorsub is None:
            return None
        return Actor(sub=self.actorsub, org=self.actororg or "")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        return cls.model_validate_json(raw)

    @property
    def service(self) -> str:
        return self._parts()["service"]

    @property
    def aggregate(self) -> str:
        return self._parts()["aggregate"]

    @property
    def name(self) -> str:
        return self._parts()["name"]

    @property
    def schema_version(self) -> int:
        return int(self._parts()["version"])

    def _parts(self) -> dict[str, str]:
        match = TYPE_PATTERN.match(self.type)
        if match is None:
            raise ValueError(f"not a Concord event type: {self.type}")
        return match.groupdict()


# A stream one organisation keeps to itself is named after the stream it belongs beside:
# `<stream id>/private/<org>`. Neither a stream id nor an organisation's id has a slash.
PRIVATE_SEPARATOR = "/private/"


def private_stream(stream_id: str, org: str) -> str:
    """The stream beside `stream_id` that only `org` may see."""
    return f"{stream_id}{PRIVATE_SEPARATOR}{org}"


def private_to(stream_id: str) -> str | None:
    """The organisation a stream is private to, or None for a stream every partner sees."""
    _, separator, org = stream_id.partition(PRIVATE_SEPARATOR)
    return org if separator else None


def event_type(service: str, event: type[DomainEvent]) -> str:
    return f"concord.{service}.{event.aggregate}.{event.event_name()}.v{event.schema_version}"


class EventRegistry:
    """What one service's events are called on the wire, and how old versions are read today."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._by_name: dict[tuple[str, str], type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, str, int], Upcaster] = {}

    def register(self, *events: type[DomainEvent]) -> None:
        for event in events:
            self._by_name[(event.aggregate, event.event_name())] = event

    def include(self, other: EventRegistry) -> None:
        """Speak another registry's events too (a published language the kernel defines)."""
        self._by_name.update(other._by_name)
        self._upcasters.update(other._upcasters)

    def upcaster(
        self, event: type[DomainEvent], from_version: int
    ) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Any]:
        """Register `fn(data_at_v) -> data_at_v+1` for payloads written before a schema change."""

        def register(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
            self.upcast(event, from_version, lambda e: e.model_copy(update={"data": fn(e.data)}))
            return fn

        return register

    def upcast(self, event: type[DomainEvent], from_version: int, step: Upcaster) -> None:
        self._upcasters[(event.aggregate, event.event_name(), from_version)] = step

    def actor_moved(
        self, event: type[DomainEvent], from_version: int, *, org: str, sub: str
    ) -> None:
        """Version `from_version` named who caused it in its payload (`org`, `sub` fields); the
        next version leaves that to the envelope. Old events keep saying who did it."""

        def lift(e: CloudEvent) -> CloudEvent:
            data = dict(e.data)
            actor_org, actor_sub = data.pop(org, None), data.pop(sub, None)
            return e.model_copy(
                update={
                    "data": data,
                    "actorsub": e.actorsub or actor_sub,
                    "actororg": e.actororg or actor_org,
                }
            )

        self.upcast(event, from_version, lift)

    def type_of(self, event: DomainEvent) -> str:
        return event_type(self.service, type(event))

    def envelope(
        self,
        event: DomainEvent,
        *,
        stream_id: str,
        stream_version: int,
        alliance_id: str | None,
        actor: Actor | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        traceparent: str | None = None,
        at: datetime | None = None,
    ) -> CloudEvent:
        return CloudEvent(
            id=uuid4(),
            source=f"/concord/{self.service}",
            type=self.type_of(event),
            subject=stream_id,
            time=at or datetime.now(UTC),
            data=event.model_dump(mode="json"),
            allianceid=alliance_id,
            streamversion=stream_version,
            correlationid=correlation_id,
            causationid=causation_id,
            traceparent=traceparent,
            actorsub=actor.sub if actor else None,
            actororg=(actor.org or None) if actor else None,
            privateto=private_to(stream_id),
        )

    def knows(self, cloud_event: CloudEvent) -> bool:
        return (cloud_event.aggregate, cloud_event.name) in self._by_name

    def decode(self, cloud_event: CloudEvent) -> DomainEvent:
        """The typed event, with its payload upcast to the version the code speaks today."""
        return self.recorded(cloud_event).event

    def recorded(self, cloud_event: CloudEvent) -> Recorded[DomainEvent]:
        """The typed, upcast event with what its envelope says about it."""
        key = (cloud_event.aggregate, cloud_event.name)
        event_class = self._by_name.get(key)
        if event_class is None:
            raise KeyError(f"unknown event type {cloud_event.type}")
        current = cloud_event
        version = cloud_event.schema_version
        while version < event_class.schema_version:
            upcast = self._upcasters.get((*key, version))
            if upcast is None:
                raise KeyError(f"no upcaster for {cloud_event.type} from v{version}")
            version += 1
            current = upcast(current)
            current = current.model_copy(
                update={"type": current.type.rsplit(".v", 1)[0] + f".v{version}"}
            )
        return Recorded(event_class.model_validate(current.data), current)


@dataclass(frozen=True)
class Recorded(Generic[E]):
    """A domain event as it was recorded: the typed payload and its envelope (who, when, why,
    where in its stream). Projections and reactions receive these."""

    event: E
    envelope: CloudEvent

    @property
    def id(self) -> UUID:
        return self.envelope.id

    @property
    def stream_id(self) -> str:
        return self.envelope.subject

    @property
    def stream_version(self) -> int:
        return self.envelope.streamversion

    @property
    def alliance_id(self) -> str | None:
        return self.envelope.allianceid

    @property
    def time(self) -> datetime:
        return self.envelope.time

    @property
    def actor(self) -> Actor | None:
        return self.envelope.actor

    @property
    def private_to(self) -> str | None:
        return self.envelope.privateto
