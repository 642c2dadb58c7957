"""Keyset pagination: a page of items, and the cursor to the one after it.

A cursor is the position of the page's last item in the list's order, written as that
position's fields joined by `.` (a time as microseconds since 1970, an id as 32 hex digits,
a number in decimal). Its OpenAPI pattern therefore says exactly which strings are cursors,
and every string that matches is a position to page after, whether this API gave it out or
not: the service accepts precisely what its document allows, and a client's typo is a 422
naming `query.cursor`, like any other parameter that breaks its schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class CursorField:
    """One field of a position: the pattern of its text, and how it is written and read."""

    pattern: str
    write: Callable[[Any], str]
    read: Callable[[str], Any]


# Up to 10^16 µs after 1970 (the year 2286), so that every match is a time Python can hold.
TIME = CursorField(
    r"[0-9]{1,16}",
    lambda moment: str((moment - EPOCH) // MICROSECOND),
    lambda text: EPOCH + int(text) * MICROSECOND,
)
ID = CursorField(r"[0-9a-f]{32}", lambda value: UUID(str(value)).hex, lambda text: UUID(hex=text))
# Below 10^18, inside PostgreSQL's bigint.
NUMBER = CursorField(r"[0-9]{1,18}", str, int)


class Cursor:
    """The cursor of one list, by the fields of its order: `Cursor(TIME, ID)` for a list in
    the order created. `parameter()` declares the query parameter; `read` gives the position
    to start after (or None, from the start); `write` the cursor after the last item."""

    def __init__(self, *fields: CursorField) -> None:
        self.fields = fields
        self.pattern = "^" + r"\.".join(field.pattern for field in fields) + "$"

    def parameter(self) -> Any:
        return Query(
            pattern=self.pattern,
            description="The `next_cursor` of the page before; without it, the first page",
        )

    def read(self, cursor: str | None) -> tuple[Any, ...] | None:
        if cursor is None:
            return None
        parts = cursor.split(".")
        return tuple(field.read(part) for field, part in zip(self.fields, parts, strict=True))

    def write(self, *position: Any) -> str:
        fields = zip(self.fields, position, strict=True)
        return ".".join(field.write(value) for field, value in fields)
