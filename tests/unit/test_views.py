"""A command's view of several streams: its version as one ETag, and the streams one
organisation keeps to itself, whose events say so in their envelope."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from concord.commands import Version
from concord.domain import DomainEvent
from concord.events import EventRegistry, private_stream, private_to


class NoteTaken(DomainEvent):
    aggregate: ClassVar[str] = "notebook"


def test_a_version_reads_as_one_number_or_one_per_stream() -> None:
    assert (str(Version(12)), str(Version(12, 3))) == ("12", "12.3")
    assert Version(12, 0) == Version(12)  # an empty second stream leaves the ETag as it was
    assert str(Version(12, 0)) == "12"
    assert Version.parse("12.3") == Version(12, 3)
    assert Version.parse("7") == Version(7)
    assert Version(12, 3).part(1) == 3 and Version(12).part(1) == 0


@pytest.mark.parametrize("text", ["", "1.", ".1", "1.2.3", "-1", "1 ", "0x1", "1234567890"])
def test_anything_else_is_not_a_version(text: str) -> None:
    assert Version.parse(text) is None


def test_a_view_has_reached_a_version_when_every_stream_has() -> None:
    assert Version(12, 3).reached(Version(12, 3))
    assert Version(13, 3).reached(Version(12))
    assert not Version(13, 2).reached(Version(12, 3))
    assert not Version(11, 9).reached(Version(12))


def test_an_event_on_a_private_stream_names_the_organisation_it_is_kept_for() -> None:
    registry = EventRegistry("notes")
    registry.register(NoteTaken)
    mine = private_stream("notebook-1", "acme.eu")
    assert (mine, private_to(mine), private_to("notebook-1")) == (
        "notebook-1/private/acme.eu",
        "acme.eu",
        None,
    )
    kept = registry.envelope(NoteTaken(), stream_id=mine, stream_version=1, alliance_id=None)
    assert json.loads(kept.to_json())["privateto"] == "acme.eu"
    assert registry.recorded(kept).private_to == "acme.eu"
    shared = registry.envelope(
        NoteTaken(), stream_id="notebook-1", stream_version=1, alliance_id=None
    )
    assert "privateto" not in json.loads(shared.to_json())  # absent on shared streams
