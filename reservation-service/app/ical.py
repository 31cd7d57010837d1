"""iCalendar (RFC 5545) rendering of bookings with the `icalendar` library, never string templates.

The feeds and the invitations mailed with confirmations, changes and cancellations are built from
the same VEVENT (`booking_event`), so a calendar app sees one UID and one SEQUENCE per booking from
both and updates its entry instead of adding a second one. A recurring series is mailed as one VEVENT
with RRULE (`series_event`), and its occurrences' mails address instances of it (RECURRENCE-ID); in the
feeds every occurrence is its own VEVENT with its own UID, like any booking. No database access here:
callers pass the booking in its API shape (`Reservation.to_dict()`, or the `data` of a reservation
event) and what they know of its room and owner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.charset import Charset
from email.mime.text import MIMEText
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vRecur

PRODID = "-//Meeting Rooms//Reservation Service//EN"
UID_DOMAIN = "meeting-rooms.local"
# Bookings whose slot is free again: cancelled, or released because nobody checked in.
FREED = ("cancelled", "released")


@dataclass(frozen=True)
class Person:
    email: str
    name: str | None = None


def booking_uid(reservation_id: int) -> str:
    """The UID of a booking: the same in every feed and mail, for the booking's whole life."""
    return f"reservation-{reservation_id}@{UID_DOMAIN}"


def series_uid(series_id: int) -> str:
    """The UID of a recurring series: its VEVENT with RRULE, and (with RECURRENCE-ID) each occurrence."""
    return f"series-{series_id}@{UID_DOMAIN}"


def room_label(room, room_id: int) -> str:
    """LOCATION of a booking: the room's name and where it is. `room`: its replica (an ORM object or a row with
    `name` and `location`), or None when the room is not known here."""
    if room is None:
        return f"Room #{room_id}"
    label = room.name or f"Room #{room_id}"
    return f"{label} ({room.location})" if room.location else label


def person(user) -> Person | None:
    """The organiser as calendars show them, from a user replica (an ORM object or a row with `email` and
    `full_name`), or None when the user is not known here."""
    return Person(user.email, user.full_name) if user is not None else None


def _utc(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


def _address(person: Person, **parameters: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    if person.name:
        address.params["CN"] = person.name
    for name, value in parameters.items():
        address.params[name.replace("_", "-").upper()] = value
    return address


def booking_event(
    booking: dict,
    *,
    location: str,
    stamp: datetime | None = None,
    organizer: Person | None = None,
    detailed: bool = True,
    as_series_instance: bool = True,
) -> Event:
    """One VEVENT for one booking.

    `detailed=False` is someone else's booking seen in a room feed: time and title only, as in the
    room's schedule. `stamp` is DTSTAMP; without it (feeds, which have no METHOD) it is the time the
    booking was last changed (RFC 5545 §3.8.7.2), so an unchanged feed renders byte for byte the same
    and keeps its ETag. In mails an occurrence of a series carries the series' UID and its RECURRENCE-ID
    (the instance of the series' event the series mail created); `as_series_instance=False` (the feeds:
    one VEVENT per reservation) gives it its own UID, like any booking.
    """
    updated = _utc(booking["updated_at"])
    event = Event()
    if as_series_instance and booking.get("series_id") and booking.get("recurrence_id"):
        # An occurrence of a series: the instance of the series' event it replaces (RFC 5545 §3.8.4.4).
        event.add("uid", series_uid(booking["series_id"]))
        event.add("recurrence-id", _utc(booking["recurrence_id"]))
    else:
        event.add("uid", booking_uid(booking["id"]))
    event.add("sequence", int(booking.get("sequence", 0)))
    event.add("dtstamp", _utc(stamp) if stamp else updated)
    event.add("dtstart", _utc(booking["start_time"]))
    event.add("dtend", _utc(booking["end_time"]))
    event.add("summary", booking["title"])
    event.add("location", location)
    event.add("status", "CANCELLED" if booking["status"] in FREED else "CONFIRMED")
    event.add("transp", "TRANSPARENT" if booking["status"] in FREED else "OPAQUE")
    if detailed:
        _add_details(event, booking, updated, organizer)
    return event


def _add_details(event: Event, entity: dict, modified: datetime, organizer: Person | None) -> None:
    """What only the owner's feed and the mails show: creation, description, organiser and attendees."""
    event.add("created", _utc(entity["created_at"]))
    event.add("last-modified", modified)
    if entity.get("description"):
        event.add("description", entity["description"])
    if organizer is not None:
        event.add("organizer", _address(organizer))
        event.add("attendee", _address(organizer, role="CHAIR", partstat="ACCEPTED"))
    for attendee in entity.get("attendees") or []:
        if organizer is None or attendee != organizer.email:
            event.add("attendee", _address(Person(attendee), role="REQ-PARTICIPANT", partstat="NEEDS-ACTION", rsvp="FALSE"))


def series_event(
    series: dict,
    *,
    first_start: datetime,
    duration: timedelta,
    rule: str,
    exdates: Iterable[datetime],
    sequence: int,
    stamp: datetime,
    location: str,
    organizer: Person | None = None,
) -> Event:
    """The VEVENT of a whole series in its mail: DTSTART in the room's zone (TZID, with its VTIMEZONE in the
    calendar), the RRULE, EXDATE for the occurrences not held (skipped). The mails of an occurrence address
    it with the same UID and its RECURRENCE-ID (`booking_event`); the feeds show each occurrence as a booking."""
    zone = ZoneInfo(series["timezone"])
    event = Event()
    event.add("uid", series_uid(series["id"]))
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", first_start.astimezone(zone))
    event.add("dtend", (first_start + duration).astimezone(zone))
    event.add("rrule", vRecur.from_ical(rule))
    excluded = sorted(moment.astimezone(zone) for moment in exdates)
    if excluded:
        event.add("exdate", excluded)
    event.add("summary", series["title"])
    event.add("location", location)
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    _add_details(event, series, stamp, organizer)
    return event


def _calendar(method: str | None = None, name: str | None = None) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method:
        calendar.add("method", method)
    if name:
        calendar.add("name", name)
        calendar.add("x-wr-calname", name)
    return calendar


def feed_calendar(name: str, events: Iterable[Event]) -> bytes:
    """A subscribable feed (no METHOD): one VEVENT per booking in the window, times in UTC (no VTIMEZONE)."""
    calendar = _calendar(name=name)
    for event in events:
        calendar.add_component(event)
    return calendar.to_ical()


def invitation(booking: dict, *, location: str, organizer: Person | None, stamp: datetime) -> str:
    """The iTIP message mailed with a notification: METHOD:CANCEL for a cancelled booking, else METHOD:REQUEST."""
    cancelled = booking["status"] in FREED
    calendar = _calendar(method="CANCEL" if cancelled else "REQUEST")
    calendar.add_component(booking_event(booking, location=location, stamp=stamp, organizer=organizer))
    return calendar.to_ical().decode()


def series_invitation(events: Iterable[Event], *, method: str) -> str:
    """The iTIP message of a whole series (REQUEST: its VEVENT with RRULE) or of some of its occurrences
    (CANCEL: one VEVENT per occurrence, each with its RECURRENCE-ID)."""
    calendar = _calendar(method=method)
    for event in events:
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical().decode()


_UTF8_AS_IS = Charset("utf-8")
_UTF8_AS_IS.body_encoding = None  # 7bit or 8bit, no transfer encoding
_METHOD_LINE = re.compile(r"^METHOD:([A-Z-]+)\r?$", re.MULTILINE)


def invitation_part(calendar: str) -> MIMEText:
    """`calendar` (from `invitation`) as the text/calendar alternative of a notification mail, with
    the `method` parameter calendar apps look for. Sent as it is (8bit): RFC 5545 folds its lines at
    75 octets."""
    # The calendar's own top-level METHOD line (short, never folded; VEVENTs have no METHOD property): read
    # without parsing the whole calendar, which cost as much as composing the mail.
    found = _METHOD_LINE.search(calendar)
    part = MIMEText(calendar, "calendar", _UTF8_AS_IS)
    part.set_param("method", found.group(1) if found else "PUBLISH")
    return part
