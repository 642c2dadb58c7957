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


_DAY = rf"{YEAR_PATTERN}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"


@dataclass(frozen=True)
class InCalendar:
    """`Annotated[date, InCalendar()]` (see `Day` and `Moment`): a date, or a moment, whose
    year as written is from FIRST_YEAR to LAST_YEAR. The OpenAPI document states it with a
    pattern beside the format, one that spells the whole date (or RFC 3339 moment) out, so
    that generators of test data can draw from the pattern rather than discard nearly every
    date of the format's ten thousand years."""

    pattern: str = f"^{_DAY}$"

    def check(self, value: date) -> date:
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"expected a year from {FIRST_YEAR} to {LAST_YEAR}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {**handler(schema), "pattern": self.pattern}


Day = Annotated[date, InCalendar()]
Moment = Annotated[AwareDatetime, InCalendar(f"^{_DAY}[Tt]{_TIME}{_OFFSET}$")]  # with its offset


@dataclass(frozen=True)
class DecimalNumber:
    """`Annotated[Decimal, DecimalNumber(...)]`: a decimal rounded half-even to `places` after
    the point, and then below 10^`digits` (0 digits: below 1), or up to it with `inclusive`;
    above 0 with `positive`, not negative unless `signed`. Read from a JSON number or a
    string like "1234.50", written as a string. The bounds hold for what is kept, and the
    OpenAPI document states them so (a JSON number's bounds move by the half unit rounding
    can carry, a string's pattern excludes the spellings that round past them), so a
    client can check a value before it sends it."""

    digits: int
    places: int
    signed: bool = False
    positive: bool = False
    inclusive: bool = False

    @property
    def pattern(self) -> str:
        # A string with no fraction, or one whose digits past `places` round it down.
        kept_zero = rf"(?:\.(?:0{{1,{self.places}}}|0{{{self.places}}}(?:[0-4][0-9]*|50*)))?$"
        whole = f"[0-9]{{1,{self.digits}}}" if self.digits else "0"
        past = (f"9{{{self.digits}}}" if self.digits else "0") + rf"\.9{{{self.places}}}[5-9]"
        number = rf"{whole}(?:\.[0-9]+)?$"
        if self.inclusive:  # or the limit itself, once rounded
            number = rf"(?:{number}|1{'0' * self.digits}{kept_zero})"
        else:
            number = f"(?!{past}){number}"
        if self.positive:
            number = f"(?!0+{kept_zero}){number}"
        return ("^-?" if self.signed else "^") + number

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
        # Far past the limit is refused unrounded: 1e307 has no 4 places to round to.
        if number.is_finite() and abs(number) < 2 * limit and (self.signed or number >= 0):
            # The bounds hold for what is kept: 9999999999999.99995 rounds to 14 digits.
            rounded = number.quantize(Decimal(1).scaleb(-self.places), ROUND_HALF_EVEN)
            below = rounded <= limit if self.inclusive else rounded < limit
            if below and -limit < rounded and (rounded > 0 or not self.positive):
                return rounded
        raise ValueError(f"expected {self.described}")

    @property
    def described(self) -> str:
        limit = f"at most {10**self.digits}" if self.inclusive else f"below {10**self.digits}"
        least = "above 0" if self.positive else ("" if self.signed else "not negative")
        return f"a number {limit}{' and ' if least else ''}{least}, once rounded to " + (
            f"{self.places} places"
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
        # A JSON number is kept as it rounds: half a unit past a bound may still be inside.
        half, limit = Decimal(5).scaleb(-self.places - 1), Decimal(10) ** self.digits
        high = {"maximum": limit + half} if self.inclusive else {"exclusiveMaximum": limit - half}
        low: dict[str, Decimal] = {"minimum": Decimal(0)}
        if self.positive:
            low = {"exclusiveMinimum": half}
        elif self.signed:
            low = {"exclusiveMinimum": -(limit - half)}
        return {
            "anyOf": [
                {"type": "number", **{k: _json_number(v) for k, v in (low | high).items()}},
                {"type": "string", "pattern": self.pattern},
            ],
            "description": f"{self.described[0].upper()}{self.described[1:]}",
        }


def _json_number(value: Decimal | int) -> int | float:
    return int(value) if value == int(value) else float(value)


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
