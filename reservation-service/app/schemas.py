"""Request and response schemas: the single source of validation and of the OpenAPI spec."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_serializer,
)
from pydantic_core import PydanticCustomError

from servicekit.openapi import ProblemDocument
from servicekit.pagination import PageEnvelope, PageQuery
from servicekit.validation import SINGLE_LINE, Substring, partial_update_of
from servicekit.validation import StrictModel as Strict

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SINGLE_LINE]
Description = Annotated[str, StringConstraints(max_length=2000)]
Attendee = Annotated[EmailStr, AfterValidator(lambda value: value.lower()), Field(max_length=320)]


def _unique_in_order(emails: list[str]) -> list[str]:
    return list(dict.fromkeys(emails))


Attendees = Annotated[list[Attendee], Field(max_length=500), AfterValidator(_unique_in_order)]
RoomId = Annotated[int, Field(ge=1, le=2**62)]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("Out of range.") from None


# A date-time written out (ISO 8601: date, "T" or a space, hours and minutes, ...; pydantic then requires the
# offset). pydantic alone also reads a number as seconds since 1970 ("0", "-1", "1795759410"): not a time here.
_DATE_TIME_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _written_date_time(value):
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME_START.match(value)):
        return value
    raise PydanticCustomError(
        "date_time_with_offset", "Must be an RFC 3339 date-time with an offset, e.g. 2027-03-01T09:00:00+01:00."
    )


# RFC 3339 / ISO 8601 with an offset (naive times and numbers are refused), held in UTC from here on: the one rule
# of body and query times. Not strict: the checked string reaches pydantic's parser as a Python str, which strict
# mode would refuse.
UtcTime = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_written_date_time), AfterValidator(_to_utc)]


def _plus_from_query(value):
    # In a query string an unencoded "+" arrives as a space: 09:00:00 01:00 means 09:00:00+01:00.
    return value.replace(" ", "+") if isinstance(value, str) else value


QueryTime = Annotated[UtcTime, BeforeValidator(_plus_from_query)]


class ReservationCreate(Strict):
    room_id: RoomId
    title: Title
    start_time: UtcTime = Field(description="RFC 3339 with an offset")
    end_time: UtcTime = Field(description="RFC 3339 with an offset; after start_time")
    description: Description | None = None
    attendees: Attendees = Field(
        default_factory=list, description="e-mail addresses; at most the room's capacity and MAX_ATTENDEES (100)"
    )


ReservationUpdate = partial_update_of(
    ReservationCreate,
    "ReservationUpdate",
    "PUT: any subset; the same rules as creation apply to the result.",
    nullable=frozenset({"description"}),
)


class ReservationListQuery(PageQuery):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    room_id: RoomId | None = None
    user_id: int | None = Field(None, ge=1, le=2**62, description="admins only; a user may pass only their own id")
    status: Literal["confirmed", "cancelled", "released"] | None = None
    from_: QueryTime | None = Field(
        None, alias="from", description="reservations ending after this time (RFC 3339 with an offset)"
    )
    to: QueryTime | None = Field(None, description="reservations starting before this time (RFC 3339 with an offset)")


class ScheduleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: QueryTime | None = Field(None, alias="from", description="RFC 3339 with an offset; default: now")
    to: QueryTime | None = Field(None, description="default: seven days after `from`; at most 92 days after it")


class ReservationOut(BaseModel):
    id: int
    room_id: int
    user_id: int
    title: str
    description: str | None
    start_time: datetime
    end_time: datetime
    attendees: list[str]
    status: Literal["confirmed", "cancelled", "released"] = Field(
        description="released: nobody checked in by the end of the grace period in a room with auto_release"
    )
    created_at: datetime
    updated_at: datetime
    sequence: int = Field(description="iCalendar SEQUENCE: 0 when booked, one more at each change or cancellation")
    checked_in_at: datetime | None = Field(None, description="when the owner or an admin checked in; null until then")
    series_id: int | None = Field(None, description="the recurring series this is an occurrence of, or null")
    recurrence_id: datetime | None = Field(
        None, description="an occurrence's original start in its series (iCalendar RECURRENCE-ID), kept when it is moved"
    )


class ReservationPage(PageEnvelope):
    items: list[ReservationOut]


class Schedule(BaseModel):
    room_id: int
    items: list[ReservationOut]


class ConflictItem(BaseModel):
    reservation_id: int
    start_time: datetime
    end_time: datetime


class BlackoutItem(BaseModel):
    blackout_id: int
    start_time: datetime
    end_time: datetime
    reason: str


class Suggestion(BaseModel):
    room_id: int
    start_time: datetime
    end_time: datetime


class BookingConflict(ProblemDocument):
    """409 problem document. A booking clash lists what is in the way: `conflicts` (other bookings),
    `blackouts`, or both; a conflict with the reservation's state (already cancelled, an Idempotency-Key
    in flight, type `/problems/conflict`) has neither."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["conflicts"]},
                {"required": ["blackouts"]},
                {"properties": {"type": {"not": {"enum": ["/problems/booking-conflict"]}}}},
            ]
        }
    )

    conflicts: list[ConflictItem] | None = Field(None, description="the confirmed reservations in the way")
    blackouts: list[BlackoutItem] | None = Field(None, description="the blackouts in the way")
    suggestions: list[Suggestion] | None = Field(
        None,
        description="on a create: up to 3 bookings that would succeed now (the same room at its nearest free time "
        "of the same length, before or after the requested one, then other fitting rooms at the requested time)",
    )


class CheckIn(Strict):
    """POST /api/reservations/{id}/check-in: nothing to send. The body may be left out; sent, it is `{}`."""


class CalendarTokenCreate(Strict):
    """POST /api/calendar/tokens: nothing to choose (yet). The body may be left out; sent, it is `{}`."""


class CalendarFeeds(BaseModel):
    me: str = Field(description="URL of your own bookings as an iCalendar feed")
    rooms: str = Field(description="URL template of a room's feed: replace `{room_id}`")


class CalendarTokenCreated(BaseModel):
    """201 of POST /api/calendar/tokens: the secret is shown this once (only its SHA-256 is stored)."""

    id: int
    token: str
    feeds: CalendarFeeds


class FeedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="a feed token from POST /api/calendar/tokens")


class QuotaExceeded(ProblemDocument):
    """409 problem document (type /problems/quota-exceeded) of a fair-use limit; admins are exempt."""

    type: Literal["/problems/quota-exceeded"]
    limit: Literal["MAX_FUTURE_BOOKINGS", "MAX_HOURS_PER_WEEK"]
    maximum: int = Field(description="the limit: bookings, or hours per ISO week")
    current: float = Field(description="what you hold now: upcoming bookings, or hours booked in that week")
    requested: float | None = Field(None, description="MAX_HOURS_PER_WEEK: hours this booking adds to the week")
    week: str | None = Field(None, description="MAX_HOURS_PER_WEEK: the ISO week in the room's time zone, e.g. 2027-W10")


BlackoutReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class BlackoutCreate(Strict):
    room_id: RoomId | None = Field(None, description="null or absent: every room")
    start_time: UtcTime = Field(description="RFC 3339 with an offset; not in the past")
    end_time: UtcTime = Field(description="RFC 3339 with an offset; after start_time")
    reason: BlackoutReason


class BlackoutOut(BaseModel):
    id: int
    room_id: int | None = Field(description="null: every room")
    start_time: datetime
    end_time: datetime
    reason: str

    @field_serializer("start_time", "end_time")
    def _as_offset(self, moment: datetime) -> str:
        return moment.isoformat()  # "+00:00", as every other time this service returns


class BlackoutPage(PageEnvelope):
    items: list[BlackoutOut]


class BlackoutListQuery(PageQuery):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    room_id: RoomId | None = Field(None, description="this room's blackouts and those of every room")
    from_: QueryTime | None = Field(None, alias="from", description="blackouts ending after this time (RFC 3339 with an offset)")
    to: QueryTime | None = Field(None, description="blackouts starting before this time (RFC 3339 with an offset)")


EquipmentName = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)]


class AvailabilityQuery(PageQuery):
    start_time: QueryTime = Field(description="with offset")
    end_time: QueryTime = Field(description="with offset; at most 7 days after start_time")
    min_capacity: int | None = Field(None, ge=1, le=10_000)
    equipment: list[EquipmentName] = Field(
        default_factory=list,
        max_length=20,
        description="repeatable (`?equipment=projector&equipment=whiteboard`); every one must be present; case-insensitive",
    )
    location: Substring | None = Field(None, description="case-insensitive substring of the location")


class AvailableRoom(BaseModel):
    room_id: int
    name: str
    capacity: int
    location: str | None
    equipment: list[str]
    timezone: str


class AvailabilityPage(PageEnvelope):
    """Every free room is counted: `total` is exact here."""

    items: list[AvailableRoom]


class FreeBusyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    room_id: list[RoomId] = Field(
        min_length=1, max_length=50, description="repeatable (`?room_id=1&room_id=2`); at most 50 rooms"
    )
    from_: QueryTime = Field(alias="from", description="with offset")
    to: QueryTime = Field(description="with offset; at most 31 days after from")


class BusyInterval(BaseModel):
    start_time: datetime
    end_time: datetime
    kind: Literal["reservation", "blackout", "closed"]


class RoomFreeBusy(BaseModel):
    room_id: int
    timezone: str
    busy: list[BusyInterval]


class FreeBusy(BaseModel):
    rooms: list[RoomFreeBusy]


class CheckInClosed(ProblemDocument):
    """409 problem document of a check-in outside its window (or of a booking that is not confirmed)."""

    opens_at: datetime | None = Field(None, description="when check-in opens (start minus CHECKIN_OPEN_MINUTES)")
    closes_at: datetime | None = Field(None, description="when check-in closes (start plus CHECKIN_GRACE_MINUTES)")


class WaitlistCreate(Strict):
    room_id: RoomId
    title: Title
    start_time: UtcTime = Field(description="RFC 3339 with an offset; not in the past")
    end_time: UtcTime = Field(description="RFC 3339 with an offset; after start_time")


class WaitlistEntryOut(BaseModel):
    id: int
    room_id: int
    user_id: int
    title: str
    start_time: datetime
    end_time: datetime
    status: Literal["waiting", "booked", "expired"] = Field(
        description="waiting; booked (for you, see reservation_id) when the window freed up; expired once its start passed"
    )
    reservation_id: int | None = Field(description="the booking made for you, once booked")
    created_at: datetime

    @field_serializer("start_time", "end_time", "created_at")
    def _as_offset(self, moment: datetime) -> str:
        return moment.isoformat()


class WaitlistPage(PageEnvelope):
    items: list[WaitlistEntryOut]


class WaitlistListQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: Literal["waiting", "booked", "expired"] | None = None


class FreeBooking(BaseModel):
    room_id: int
    title: str
    start_time: datetime
    end_time: datetime


class SlotIsFree(ProblemDocument):
    """409 problem document (type /problems/slot-free) of joining the waitlist for a free window:
    `booking` is the body of the POST /api/reservations that would book it."""

    type: Literal["/problems/slot-free"]
    booking: FreeBooking


class UtilizationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: QueryTime = Field(alias="from", description="start of the period (with offset)")
    to: QueryTime = Field(description="end of the period (with offset); at most 366 days after from")


class RoomUtilization(BaseModel):
    room_id: int
    name: str
    timezone: str
    booked_hours: float = Field(description="hours of confirmed bookings inside the period")
    open_hours: float = Field(description="hours the room is open inside the period (its policy, in its zone)")
    utilization: float | None = Field(description="booked_hours / open_hours in percent; null when never open")
    bookings: int = Field(description="confirmed bookings overlapping the period")
    cancellations: int = Field(description="cancelled bookings overlapping the period")
    releases: int = Field(description="bookings released because nobody checked in (no-shows)")


class UtilizationReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    rooms: list[RoomUtilization]


Recurrence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class SeriesCreate(ReservationCreate):
    """POST /api/reservations/series: a single booking's body plus the rule. start_time and end_time give the time of
    day and the length; the series starts at the rule's first occurrence at or after start_time (a start_time the rule
    does not produce is not booked itself: RFC 5545 leaves it undefined, and python-dateutil's reading is used)."""

    recurrence: Recurrence = Field(
        description="RFC 5545 RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10 (a leading 'RRULE:' is allowed). "
        "FREQ DAILY, WEEKLY, MONTHLY or YEARLY; INTERVAL, BYDAY (ordinals such as 1MO or -1FR with MONTHLY/YEARLY), "
        "BYMONTHDAY, BYMONTH, WKST; COUNT or UNTIL (one of them required). Expanded in the room's time zone "
        "from start_time, keeping its wall-clock time; the first occurrence is the rule's first at or after start_time."
    )
    on_conflict: Literal["fail", "skip"] = Field(
        "fail", description="fail: any clashing occurrence refuses the whole series (409); skip: book the free ones"
    )


SkipReason = Literal["conflict", "blackout", "closed", "quota"]


class SkippedOccurrence(BaseModel):
    start_time: datetime
    end_time: datetime
    reason: SkipReason = Field(
        description="conflict: another booking; blackout; closed: outside the room's opening hours; quota: a fair-use limit"
    )
    message: str = Field(description="what is in the way, in words")


class SeriesOut(BaseModel):
    id: int
    room_id: int
    user_id: int
    title: str
    recurrence: str
    timezone: str = Field(description="the room's IANA time zone the rule was expanded in")
    occurrences: list[ReservationOut] = Field(description="every occurrence booked, earliest first (cancelled ones too)")
    skipped: list[SkippedOccurrence] = Field(description="occurrences not booked (on_conflict skip)")
    created_at: datetime


class ClashingOccurrence(SkippedOccurrence):
    conflicts: list[ConflictItem] = Field(default_factory=list, description="the confirmed reservations in the way")
    blackouts: list[BlackoutItem] = Field(default_factory=list, description="the blackouts in the way")


class SeriesConflict(ProblemDocument):
    """409 problem document (type /problems/series-conflict) of a series with on_conflict fail: every clashing
    occurrence with what it clashes with; nothing was booked."""

    type: Literal["/problems/series-conflict"]
    occurrences: list[ClashingOccurrence]


class SeriesCancelQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: QueryTime | None = Field(
        None, alias="from", description="cancel the occurrences starting at or after this time (default and earliest: now)"
    )


SCHEMAS = [
    ReservationCreate,
    ReservationUpdate,
    ReservationOut,
    ReservationPage,
    Schedule,
    BookingConflict,
    QuotaExceeded,
    BlackoutCreate,
    BlackoutOut,
    BlackoutPage,
    CalendarTokenCreate,
    CheckIn,
    CalendarTokenCreated,
    AvailabilityPage,
    FreeBusy,
    CheckInClosed,
    WaitlistCreate,
    WaitlistEntryOut,
    WaitlistPage,
    SlotIsFree,
    UtilizationReport,
    SeriesCreate,
    SeriesOut,
    SeriesConflict,
]
