"""The CloudEvents 1.0 envelope every Concord event travels in, and the registry that turns
envelopes back into typed domain events (upcasting old schema versions on the way)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict

from concord.domain import DomainEvent

TYPE_PATTERN = re.compile(
    r"^concord\.(?P<service>[a-z_]+)\.(?P<aggregate>[a-z_]+)\.(?P<name>[a-z_]+)\.v(?P<version>\d+)$"
)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


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

    def upcaster(
        self, event: type[DomainEvent], from_version: int
    ) -> Callable[[Upcaster], Upcaster]:
        """Register `fn(data_at_v) -> data_at_v+1` for payloads written before a schema change."""

        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[(event.aggregate, event.event_name(), from_version)] = fn
            return fn

        return register

    def type_of(self, event: DomainEvent) -> str:
        return event_type(self.service, type(event))

    def envelope(
        self,
        event: DomainEvent,
        *,
        stream_id: str,
        stream_version: int,
        alliance_id: str | None,
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
        )

    def knows(self, cloud_event: CloudEvent) -> bool:
        return (cloud_event.aggregate, cloud_event.name) in self._by_name

    def decode(self, cloud_event: CloudEvent) -> DomainEvent:
        """The typed event, with its payload upcast to the version the code speaks today."""
        key = (cloud_event.aggregate, cloud_event.name)
        event_class = self._by_name.get(key)
        if event_class is None:
            raise KeyError(f"unknown event type {cloud_event.type}")
        data = dict(cloud_event.data)
        version = cloud_event.schema_version
        while version < event_class.schema_version:
            upcast = self._upcasters.get((*key, version))
            if upcast is None:
                raise KeyError(f"no upcaster for {cloud_event.type} from v{version}")
            data = upcast(data)
            version += 1
        return event_class.model_validate(data)
