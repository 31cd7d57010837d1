"""iCalendar (RFC 5545) rendering of bookings with the `icalendar` library, never string templates.

The feeds and the invitations mailed with confirmations, changes and cancellations are built from
the same VEVENT (`booking_event`), so a calendar app sees one UID and one SEQUENCE per booking from
both and updates its entry instead of adding a second one. No database access here: callers pass
the booking in its API shape (`Reservation.to_dict()`, or the `data` of a reservation event) and
what they know of its room and owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from icalendar import Calendar, Event, vCalAddress

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


def room_label(name: str | None, location: str | None, room_id: int) -> str:
    """LOCATION of a booking: the room's name and where it is."""
    label = name or f"Room #{room_id}"
    return f"{label} ({location})" if location else label


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
) -> Event:
    """One VEVENT for one booking.

    `detailed=False` is someone else's booking seen in a room feed: time and title only, as in the
    room's schedule. `stamp` is DTSTAMP; without it (feeds, which have no METHOD) it is the time the
    booking was last changed (RFC 5545 §3.8.7.2), so an unchanged feed renders byte for byte the same
    and keeps its ETag. A recurring series will extend this event (RRULE/EXDATE on the series' VEVENT,
    RECURRENCE-ID on a moved occurrence) rather than build another one.
    """
    updated = _utc(booking["updated_at"])
    event = Event()
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
        event.add("created", _utc(booking["created_at"]))
        event.add("last-modified", updated)
        if booking.get("description"):
            event.add("description", booking["description"])
        if organizer is not None:
            event.add("organizer", _address(organizer))
            event.add("attendee", _address(organizer, role="CHAIR", partstat="ACCEPTED"))
        for attendee in booking.get("attendees") or []:
            if organizer is None or attendee != organizer.email:
                event.add("attendee", _address(Person(attendee), role="REQ-PARTICIPANT", partstat="NEEDS-ACTION", rsvp="FALSE"))
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
    """A subscribable feed (no METHOD): one VEVENT per booking in the window."""
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


def attach_invitation(message: EmailMessage, calendar: str) -> None:
    """Add `calendar` (from `invitation`) to a plain-text message as its text/calendar alternative,
    with the `method` parameter calendar apps look for."""
    method = str(Calendar.from_ical(calendar).get("METHOD", "PUBLISH"))
    message.add_alternative(calendar, subtype="calendar", params={"method": method})
