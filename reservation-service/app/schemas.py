"""Request and response schemas: the single source of validation and of the OpenAPI spec."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, StringConstraints

from servicekit.pagination import PageQuery

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Attendee = Annotated[EmailStr, AfterValidator(lambda value: value.lower()), Field(max_length=320)]


def _dedupe(emails: list[str]) -> list[str]:
    return list(dict.fromkeys(emails))


Attendees = Annotated[list[Attendee], Field(max_length=500), AfterValidator(_dedupe)]
RoomId = Annotated[int, Field(ge=1, le=2**62)]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("Out of range.") from None


# RFC 3339 with an offset (naive times are refused), held in UTC from here on.
UtcTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def _plus_from_query(value):
    # In a query string an unencoded "+" arrives as a space: 09:00:00 01:00 means 09:00:00+01:00.
    return value.replace(" ", "+") if isinstance(value, str) else value


QueryTime = Annotated[UtcTime, BeforeValidator(_plus_from_query)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ReservationCreate(Strict):
    room_id: RoomId
    title: Title
    start_time: UtcTime = Field(description="RFC 3339 with an offset")
    end_time: UtcTime = Field(description="RFC 3339 with an offset; after start_time")
    description: Description | None = None
    attendees: Attendees = Field(default_factory=list, description="e-mail addresses; at most the room's capacity")


class ReservationUpdate(Strict):
    """PUT: any subset; the same rules as creation apply to the result."""

    room_id: RoomId | None = None
    title: Title | None = None
    start_time: UtcTime | None = None
    end_time: UtcTime | None = None
    description: Description | None = None
    attendees: Attendees | None = None


class ReservationListQuery(PageQuery):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    room_id: RoomId | None = None
    user_id: int | None = Field(None, ge=1, le=2**62, description="admins only")
    status: Literal["confirmed", "cancelled"] | None = None
    from_: QueryTime | None = Field(None, alias="from", description="reservations ending after this time")
    to: QueryTime | None = Field(None, description="reservations starting before this time")


class ScheduleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: QueryTime | None = Field(None, alias="from", description="default: now")
    to: QueryTime | None = Field(None, description="default: seven days after `from`")


class ReservationOut(BaseModel):
    id: int
    room_id: int
    user_id: int
    title: str
    description: str | None
    start_time: datetime
    end_time: datetime
    attendees: list[str]
    status: Literal["confirmed", "cancelled"]
    created_at: datetime
    updated_at: datetime


class ReservationPage(BaseModel):
    items: list[ReservationOut]
    page: int
    per_page: int
    total: int
    total_is_estimate: bool = Field(
        description="true when `total` is PostgreSQL's estimate: rows are counted exactly up to 1,000 only"
    )


class Schedule(BaseModel):
    room_id: int
    items: list[ReservationOut]


class ConflictItem(BaseModel):
    reservation_id: int
    start_time: datetime
    end_time: datetime


class BookingConflict(BaseModel):
    """409 problem document of a booking clash."""

    type: str
    title: str
    status: int
    detail: str
    conflicts: list[ConflictItem]


SCHEMAS = [ReservationCreate, ReservationUpdate, ReservationOut, ReservationPage, Schedule, BookingConflict]
