"""Calendar feeds: revocable feed tokens, the bookings each feed shows, and the invitation part of
notification mail. No Flask here; rendering is in `ical`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from servicekit.auth import Principal, revoked_by_cutoff
from servicekit.db import db, utcnow
from servicekit.problems import NotFound, Unauthorized

from . import ical
from .models import CalendarToken, Reservation, RoomReplica, UserReplica
from .series import feed_rule

FEED_DAYS_BACK = 30
NOTIFIED_EVENTS = frozenset({"reservation.created", "reservation.updated", "reservation.cancelled", "reservation.released"})
SERIES_EVENTS = frozenset({"reservation.series_created", "reservation.series_cancelled"})
FEED_TOKEN_REFUSED = "The feed token is missing, invalid or revoked."


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


def feed_holder(secret: str | None) -> int:
    """The user a feed token belongs to. A missing, unknown or revoked token, a deactivated user's, or one made
    before the user's token cut-off, is 401, one answer for all: no hint whether the token ever existed."""
    token = None
    if secret:
        token = db.session.execute(
            select(CalendarToken).where(CalendarToken.token_hash == token_digest(secret), CalendarToken.revoked_at.is_(None))
        ).scalar_one_or_none()
    # The user's cut-off from `user-events` ends feed tokens as it ends access tokens: every one while the user
    # is deactivated, and after a reactivation (or a role change) those made before it.
    if token is None or revoked_by_cutoff(token.user_id, token.created_at):
        raise Unauthorized(FEED_TOKEN_REFUSED)
    return token.user_id


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


def _feed_event(booking: Reservation, *, location: str, organizer: ical.Person | None = None, detailed: bool = True):
    """A booking's VEVENT in a feed: its own UID and SEQUENCE, an occurrence of a series included (one VEVENT
    per reservation; only the mails address an occurrence as an instance of the series' event)."""
    return ical.booking_event(
        booking.to_dict(), location=location, organizer=organizer, detailed=detailed, as_series_instance=False
    )


def my_feed(user_id: int, window: FeedWindow) -> bytes:
    """The user's own bookings in the window, cancelled ones included (STATUS:CANCELLED), each occurrence of a
    series as its own VEVENT."""
    bookings = list(
        db.session.execute(
            _in_window(window).where(Reservation.user_id == user_id).order_by(Reservation.start_time, Reservation.id)
        ).scalars()
    )
    rooms, organizer = _rooms({b.room_id for b in bookings}), _person(user_id)
    events = [_feed_event(b, location=ical.room_label(rooms.get(b.room_id), b.room_id), organizer=organizer) for b in bookings]
    return ical.feed_calendar("My room bookings", events)


def room_feed(room_id: int, viewer_id: int, window: FeedWindow) -> bytes:
    """A room's bookings in the window, each occurrence of a series as its own VEVENT; other people's show time
    and title only."""
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
        _feed_event(b, location=location, organizer=organizer)
        if b.user_id == viewer_id
        else _feed_event(b, location=location, detailed=False)
        for b in bookings
    ]
    return ical.feed_calendar(ical.room_label(room, room_id), events)


def invitation_for_event(event_type: str, data: dict, *, location: str, organizer: ical.Person | None) -> str | None:
    """The text/calendar part of a notification mail (REQUEST, or CANCEL for a cancellation), with the
    booking's UID and SEQUENCE as the feeds show them; an occurrence of a series is addressed instead as the
    instance (RECURRENCE-ID) of the series' event its mail created. None for events that send no mail.
    `location` and `organizer` are the booking's room and owner as the mail consumer read them (`mail.Replicas`)."""
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
