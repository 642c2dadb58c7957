"""The pure vocabulary every service's domain speaks: events, deciders and rejections.

Nothing here does I/O; a domain package imports only this module and `concord.events`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import core_schema

# What `strip_whitespace` trims (Unicode White_Space), spelled out: `\s` means other things
# in other regex dialects (ECMAScript's, which OpenAPI tools use, lacks U+0085; Python's adds
# U+001C to U+001F), and the document must say exactly what the service accepts.
_SPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _printed(most: int) -> Any:
    """Text a person typed: trimmed, then 1 to `most` characters, none U+0000 (PostgreSQL
    cannot store it). The document gets one pattern that says all of it of the text as sent
    (a length there would count the spaces that are trimmed), so clients can check first."""
    edge = rf"[^\x00{_SPACE}]"
    sent = rf"^[{_SPACE}]*{edge}(?:[^\x00]{{0,{most - 2}}}{edge})?[{_SPACE}]*$"
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=most, pattern=sent),
        WithJsonSchema({"type": "string", "pattern": sent}),
    ]


ShortText = _printed(200)
LongText = _printed(4000)
# An organisation's id, as in its members' tokens (the `org` claim).
ORG_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
OrgId = Annotated[str, StringConstraints(pattern=ORG_ID_PATTERN, min_length=1, max_length=63)]


# The years a date or moment a caller sends may fall in: every alliance lives within them,
# and every day and moment of them, in any time zone, can be held, placed in UTC and named
# as a period (`2026-11`). Beyond them a date is a typo or an attack: year 1 at +14:00
# overflows as it is placed in UTC, and year 999 makes no period.
FIRST_YEAR, LAST_YEAR = 2000, 2199
YEAR_PATTERN = "2[01][0-9]{2}"


@dataclass(frozen=True)
class InCalendar:
    """`Annotated[date, InCalendar()]` (see `Day` and `Moment`): a date, or a moment, whose
    year as written is from FIRST_YEAR to LAST_YEAR. The OpenAPI document does not say so:
    a pattern beside the format would, but generators of test data then throw away nearly
    every date they make. The refusal says it instead."""

    def check(self, value: date) -> date:
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"expected a year from {FIRST_YEAR} to {LAST_YEAR}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))


Day = Annotated[date, InCalendar()]
Moment = Annotated[AwareDatetime, InCalendar()]  # with its UTC offset


@dataclass(frozen=True)
class DecimalNumber:
    """`Annotated[Decimal, DecimalNumber(...)]`: a decimal with at most `digits` digits before
    the point once rounded half-even to `places` after it. Read from a JSON number or a string
    like "1234.50", written as a string; the OpenAPI document states what is accepted, so a
    client can check a value before it sends it."""

    digits: int
    places: int
    signed: bool = False

    @property
    def pattern(self) -> str:
        return ("^-?" if self.signed else "^") + f"[0-9]{{1,{self.digits}}}(\\.[0-9]+)?$"

    def read(self, value: Any) -> Decimal:
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = Decimal(str(value))
        elif isinstance(value, str) and re.fullmatch(self.pattern, value):
            number = Decimal(value)
        else:
            number = Decimal("NaN")
        limit = Decimal(10) ** self.digits
        if number.is_finite() and -limit < number < limit and (self.signed or number >= 0):
            # The limit holds for what is kept: 9999999999999.99995 rounds to 14 digits.
            rounded = number.quantize(Decimal(1).scaleb(-self.places), ROUND_HALF_EVEN)
            if -limit < rounded < limit:
                return rounded
        raise ValueError(
            f"expected a number with at most {self.digits} digits before the point, once "
            f"rounded to {self.places} places" + ("" if self.signed else ", not negative")
        )

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self.read,
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        if handler.mode == "serialization":
            return {"type": "string", "pattern": self.pattern}
        low = {"exclusiveMinimum": -(10**self.digits)} if self.signed else {"minimum": 0}
        return {
            "anyOf": [
                {"type": "number", **low, "exclusiveMaximum": 10**self.digits},
                {"type": "string", "pattern": self.pattern},
            ]
        }


class DomainEvent(BaseModel):
    """A fact that happened to an aggregate. Subclasses name it in the past tense.

    `aggregate` and `schema_version` form the CloudEvents type
    `concord.<service>.<aggregate>.<event_name>.v<schema_version>`; when a payload changes
    shape, bump `schema_version` and register an upcaster for the old one (`concord.events`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    aggregate: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def event_name(cls) -> str:
        return _snake_case(cls.__name__)


@cache
def _snake_case(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


@dataclass(frozen=True)
class Actor:
    """Who asks for a command: the person (`sub`) and the organisation they speak for, or
    Concord itself (a reaction or a timer: `org` is empty and `sub` names it)."""

    sub: str
    org: str
    roles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(sub=name, org="")


@dataclass(frozen=True)
class ScheduleTimer:
    """Run the timer `name` (a command the service declares) on this stream at `due`, with
    `data`. Scheduling the same `key` again moves it."""

    key: str
    due: datetime
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelTimer:
    key: str


TimerChange = ScheduleTimer | CancelTimer


class Rejected(Exception):
    """A command breaks a business rule. Answered as 422 with the rule in plain words."""

    def __init__(self, detail: str, *, field_name: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field_name = field_name


class NotFound(Exception):
    """The thing does not exist, or the caller's organisation may not see it (same answer)."""

    def __init__(self, detail: str = "Not found") -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(Exception):
    """The caller may see the thing but lacks the role to change it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


S = TypeVar("S")
C = TypeVar("C")


@dataclass(frozen=True)
class Decider(Generic[S, C]):
    """An aggregate as three pure functions: where it starts, what a command decides, and
    how it grows."""

    aggregate: str
    initial: Callable[[], S]
    decide: Callable[[S, C], Sequence[DomainEvent]]
    evolve: Callable[[S, DomainEvent], S]
    # The timers that events set, move or cancel, given the state after them: scheduled in
    # the transaction that appends the events, whoever appends them.
    timers: Callable[[S, Sequence[DomainEvent]], Sequence[TimerChange]] | None = None

    def fold(self, events: Sequence[DomainEvent], state: S | None = None) -> S:
        current = self.initial() if state is None else state
        for event in events:
            current = self.evolve(current, event)
        return current


def payload(event: DomainEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")
