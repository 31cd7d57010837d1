"""Calendar feeds: revocable feed tokens, the bookings each feed shows, and the invitation part of
notification mail. No Flask here; rendering is in `ical`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from servicekit.auth import Principal, is_deactivated
from servicekit.db import db, utcnow
from servicekit.problems import NotFound

from . import ical
from .models import CalendarToken, Reservation, ReservationSeries, RoomReplica, UserReplica
from .series import feed_rule

FEED_DAYS_BACK = 30
NOTIFIED_EVENTS = frozenset({"reservation.created", "reservation.updated", "reservation.cancelled", "reservation.released"})
SERIES_EVENTS = frozenset({"reservation.series_created", "reservation.series_cancelled"})


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(principal: Principal) -> tuple[CalendarToken, str]:
    """A new feed token of the caller: the row (holding only the digest) and the secret, shown once."""
    secret = secrets.token_urlsafe(32)
    token = CalendarToken(user_id=principal.user_id, token_hash=token_digest(secret))
    db.session.add(token)
    db.session.commit()
    return token, secret


def revoke_token(token_id: int, principal: Principal) -> None:
    """Revoke one of the caller's tokens (again: no change). Someone else's is 404, like an unknown one."""
    token = db.session.get(CalendarToken, token_id, with_for_update=True)
    if token is None or token.user_id != principal.user_id:
        raise NotFound(f"Calendar token {token_id} does not exist.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    db.session.commit()


def feed_holder(secret: str) -> int:
    """The user a feed token belongs to; 404 for an unknown or revoked token, or a deactivated user's."""
    token = db.session.execute(
        select(CalendarToken).where(CalendarToken.token_hash == token_digest(secret), CalendarToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if token is None or not _is_active(token.user_id):
        raise NotFound("No such calendar feed.")  # no hint whether the token ever existed
    return token.user_id


def _is_active(user_id: int) -> bool:
    user = db.session.get(UserReplica, user_id)
    return not is_deactivated(user_id) and (user is None or user.is_active)


@dataclass(frozen=True)
class FeedWindow:
    start: datetime
    end: datetime

    @classmethod
    def around(cls, now: datetime, horizon: timedelta) -> FeedWindow:
        """From 30 days back to the booking horizon ahead."""
        return cls(now - timedelta(days=FEED_DAYS_BACK), now + horizon)


def _in_window(window: FeedWindow):
    return select(Reservation).where(Reservation.end_time > window.start, Reservation.start_time < window.end)


def _rooms(room_ids: set[int]) -> dict[int, RoomReplica]:
    if not room_ids:
        return {}
    return {
        room.room_id: room for room in db.session.execute(select(RoomReplica).where(RoomReplica.room_id.in_(room_ids))).scalars()
    }


def _person(user_id: int) -> ical.Person | None:
    return ical.person(db.session.get(UserReplica, user_id))


def _series_events(bookings: list[Reservation], viewer_id: int, location_of, only_room: int | None = None) -> list:
    """One VEVENT per series among `bookings` (RRULE in the room's zone, EXDATE for the occurrences not held)
    and one per changed occurrence (RECURRENCE-ID); `location_of(room_id)` gives LOCATION. With `only_room`
    (a room's feed) an occurrence moved to another room is not shown here, and the occurrences moved here from
    a series of another room are shown as changed occurrences only."""
    ids = sorted({b.series_id for b in bookings if b.series_id})
    if not ids:
        return []
    series_rows = db.session.execute(select(ReservationSeries).where(ReservationSeries.id.in_(ids))).scalars()
    every = {row.id: row for row in series_rows}
    occurrences: dict[int, list[Reservation]] = {}
    for reservation in db.session.execute(
        select(Reservation).where(Reservation.series_id.in_(ids)).order_by(Reservation.recurrence_id, Reservation.id)
    ).scalars():
        occurrences.setdefault(reservation.series_id, []).append(reservation)
    events = []
    for series_id in ids:
        series, held = every[series_id], occurrences[series_id]
        skipped = [datetime.fromisoformat(item["start_time"]) for item in series.skipped or []]
        first = min([r.recurrence_id for r in held] + skipped)
        original = held[0]
        detailed = series.user_id == viewer_id
        cancelled = [
            r.recurrence_id for r in held if r.status in ical.FREED or (only_room is not None and r.room_id != only_room)
        ]
        body = {
            "id": series.id,
            "timezone": series.timezone,
            "title": series.title,
            "created_at": series.created_at,
            "description": original.description,
            "attendees": list(original.attendees),
        }
        changed = [
            r for r in held if r.status == "confirmed" and r.sequence > 0 and (only_room is None or r.room_id == only_room)
        ]
        if only_room is not None and series.room_id != only_room:
            held_here = [r for r in held if r.status == "confirmed" and r.room_id == only_room]
            events += [ical.booking_event(r.to_dict(), location=location_of(r.room_id), detailed=detailed) for r in held_here]
            continue
        events.append(
            ical.series_event(
                body,
                first_start=first,
                duration=_duration(held),
                rule=feed_rule(series.recurrence, len(held) + len(skipped)),
                exdates=cancelled + skipped,
                sequence=len(cancelled),
                stamp=max([series.created_at] + [r.updated_at for r in held]),
                location=location_of(series.room_id),
                organizer=_person(series.user_id) if detailed else None,
                detailed=detailed,
            )
        )
        for occurrence in changed:
            events.append(
                ical.booking_event(
                    occurrence.to_dict(),
                    location=location_of(occurrence.room_id),
                    organizer=_person(series.user_id) if detailed else None,
                    detailed=detailed,
                )
            )
    return events


def _duration(held: list[Reservation]) -> timedelta:
    """The series' length of an occurrence, from one never changed (a moved one may have another length)."""
    unchanged = [r for r in held if r.sequence == 0]
    source = unchanged[0] if unchanged else held[0]
    return source.end_time - source.start_time


def my_feed(user_id: int, window: FeedWindow) -> bytes:
    """The user's own bookings in the window, cancelled ones included (STATUS:CANCELLED); a series as one
    VEVENT with RRULE."""
    bookings = list(
        db.session.execute(
            _in_window(window).where(Reservation.user_id == user_id).order_by(Reservation.start_time, Reservation.id)
        ).scalars()
    )
    rooms, organizer = _rooms({b.room_id for b in bookings}), _person(user_id)
    events = [
        ical.booking_event(b.to_dict(), location=ical.room_label(rooms.get(b.room_id), b.room_id), organizer=organizer)
        for b in bookings
        if not b.series_id
    ]
    events += _series_events(bookings, user_id, lambda room_id: ical.room_label(rooms.get(room_id), room_id))
    return ical.feed_calendar("My room bookings", events)


def room_feed(room_id: int, viewer_id: int, window: FeedWindow) -> bytes:
    """A room's bookings in the window; other people's show time and title only; a series as one VEVENT."""
    room = db.session.get(RoomReplica, room_id)
    if room is None or room.deleted:
        raise NotFound(f"Room {room_id} does not exist.")
    bookings = list(
        db.session.execute(
            _in_window(window).where(Reservation.room_id == room_id).order_by(Reservation.start_time, Reservation.id)
        ).scalars()
    )
    location, organizer = ical.room_label(room, room_id), _person(viewer_id)
    events = [
        ical.booking_event(b.to_dict(), location=location, organizer=organizer)
        if b.user_id == viewer_id
        else ical.booking_event(b.to_dict(), location=location, detailed=False)
        for b in bookings
        if not b.series_id
    ]
    rooms = _rooms({b.room_id for b in bookings} | {room_id})
    events += _series_events(bookings, viewer_id, lambda rid: ical.room_label(rooms.get(rid), rid), only_room=room_id)
    return ical.feed_calendar(ical.room_label(room, room_id), events)


def invitation_for_event(event_type: str, data: dict, *, location: str, organizer: ical.Person | None) -> str | None:
    """The text/calendar part of a notification mail (REQUEST, or CANCEL for a cancellation), with the
    UID and SEQUENCE the feeds show; None for events that send no mail. `location` and `organizer` are
    the booking's room and owner as the mail consumer read them (`mail.Replicas`)."""
    if event_type in SERIES_EVENTS:
        return _series_invitation(event_type, data, location=location, organizer=organizer)
    if event_type not in NOTIFIED_EVENTS:
        return None
    return ical.invitation(data, location=location, organizer=organizer, stamp=utcnow())


def _series_invitation(event_type: str, data: dict, *, location: str, organizer: ical.Person | None) -> str | None:
    """The text/calendar part of the one mail of a series: REQUEST with the series' VEVENT when it is booked,
    CANCEL with each cancelled occurrence (RECURRENCE-ID) when it is cancelled from a date."""
    occurrences = data["occurrences"]
    if not occurrences:
        return None
    stamp = utcnow()
    if event_type == "reservation.series_cancelled":
        events = [ical.booking_event(o, location=location, stamp=stamp, organizer=organizer) for o in occurrences]
        return ical.series_invitation(events, method="CANCEL")
    skipped = [datetime.fromisoformat(item["start_time"]) for item in data["skipped"]]
    first = min([datetime.fromisoformat(o["recurrence_id"]) for o in occurrences] + skipped)
    one = occurrences[0]
    master = ical.series_event(
        {**data, "description": one["description"], "attendees": one["attendees"]},
        first_start=first,
        duration=datetime.fromisoformat(one["end_time"]) - datetime.fromisoformat(one["start_time"]),
        rule=feed_rule(data["recurrence"], len(occurrences) + len(skipped)),
        exdates=skipped,
        sequence=0,
        stamp=stamp,
        location=location,
        organizer=organizer,
    )
    return ical.series_invitation([master], method="REQUEST")
