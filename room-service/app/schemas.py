"""Request and response schemas: the single source of validation and of the OpenAPI spec."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from servicekit.pagination import PageEnvelope, PageQuery
from servicekit.validation import SINGLE_LINE, Substring, partial_update_of
from servicekit.validation import StrictModel as Strict

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SINGLE_LINE]
Capacity = Annotated[int, Field(ge=1, le=10_000)]
Location = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), SINGLE_LINE]
Description = Annotated[str, StringConstraints(max_length=2000)]
EquipmentName = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50), SINGLE_LINE]


def _unique_sorted(names: list[str]) -> list[str]:
    return sorted(set(names))


EquipmentList = Annotated[list[EquipmentName], Field(max_length=50), AfterValidator(_unique_sorted)]


# "localtime" is the host's own setting, not an IANA name.
KNOWN_ZONES = frozenset(available_timezones()) - {"localtime", "posixrules"}


def known_zone(name: str) -> str:
    """An IANA time zone name the standard library's zoneinfo can load (not "localtime" and the like)."""
    try:
        if name in KNOWN_ZONES:
            ZoneInfo(name)
            return name
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise ValueError("Unknown time zone; use an IANA name such as Europe/Berlin.")


Timezone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(known_zone),
    Field(description="IANA time zone name, e.g. Europe/Berlin"),
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ClockTime = Annotated[str, StringConstraints(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
OpeningInterval = Annotated[
    list[ClockTime],
    Field(min_length=2, max_length=2, description='["08:00", "20:00"]: local start and end; "24:00" is the end of the day'),
]
DayHours = Annotated[list[OpeningInterval], Field(max_length=12, description="intervals in order, not overlapping")]


class OpenHours(Strict):
    """Opening hours per weekday, in the room's local time; a day that is missing (or empty) is closed."""

    mon: DayHours | None = None
    tue: DayHours | None = None
    wed: DayHours | None = None
    thu: DayHours | None = None
    fri: DayHours | None = None
    sat: DayHours | None = None
    sun: DayHours | None = None

    @field_validator(*WEEKDAYS)
    @classmethod
    def _ordered_intervals(cls, intervals: list[list[str]] | None) -> list[list[str]] | None:
        if intervals is None:
            return None
        previous_end = "00:00"
        for start, end in intervals:
            if start == "24:00":
                raise ValueError("An interval cannot start at 24:00.")
            if end <= start:
                raise ValueError(f"{start}–{end}: the end must be after the start.")
            if start < previous_end:
                raise ValueError(f"{start}–{end}: intervals must be in order and must not overlap.")
            previous_end = end
        return intervals

    def as_stored(self) -> dict[str, list[list[str]]]:
        return {day: hours for day, hours in self.model_dump().items() if hours is not None}


class BookingPolicy(Strict):
    """Rules for booking the room, enforced by reservation-service on every new or moved booking."""

    open_hours: OpenHours | None = Field(None, description="null: always open")
    min_minutes: int = Field(5, ge=1, le=10_080, description="shortest booking (real elapsed time)")
    max_minutes: int = Field(720, ge=1, le=10_080, description="longest booking (real elapsed time)")
    horizon_days: int = Field(365, ge=1, le=3_650, description="how far ahead a booking may start")
    auto_release: bool = Field(False, description="release bookings not checked in")

    def as_stored(self) -> dict:
        return {**self.model_dump(), "open_hours": self.open_hours.as_stored() if self.open_hours else None}


class RoomCreate(Strict):
    name: Name = Field(description="unique among rooms (case-insensitive)")
    capacity: Capacity
    location: Location = ""
    equipment: EquipmentList = Field(default_factory=list, description='names; "Projector" and "projector" are one')
    description: Description = ""
    is_active: bool = True
    timezone: Timezone | None = Field(None, description="IANA name; default: the service's DEFAULT_TIMEZONE")
    booking_policy: BookingPolicy = Field(default_factory=BookingPolicy)


BookingPolicyUpdate = partial_update_of(
    BookingPolicy,
    "BookingPolicyUpdate",
    "PUT: the policy fields sent replace those of the room; the others keep their value.",
    nullable=frozenset({"open_hours"}),
)
RoomUpdate = partial_update_of(
    RoomCreate, "RoomUpdate", "PUT: any subset of the fields.", nested={"booking_policy": BookingPolicyUpdate}
)


class RoomListQuery(PageQuery):
    min_capacity: Capacity | None = None
    equipment: list[EquipmentName] = Field(
        default_factory=list,
        max_length=20,
        description="repeatable (`?equipment=projector&equipment=whiteboard`); every one must be present; case-insensitive",
    )
    location: Substring | None = Field(None, description="case-insensitive substring of the location")
    is_active: bool | None = None


class RoomOut(BaseModel):
    id: int
    name: str
    capacity: int
    location: str
    equipment: list[str]
    description: str
    is_active: bool
    timezone: str
    booking_policy: BookingPolicy
    created_at: datetime
    updated_at: datetime


class RoomPage(PageEnvelope):
    items: list[RoomOut]


class InternalRoom(RoomOut):
    """For reservation-service: also deleted rooms, so it can tell them from unknown ones."""

    deleted: bool


SCHEMAS = [RoomCreate, RoomUpdate, RoomOut, RoomPage, InternalRoom]
