"""reservation-service's consumers.

- group `reservation-service`: `room-events` and `user-events` keep the read models of rooms and
  users; a deleted room or a deactivated user has its future reservations cancelled (each with
  its `reservation.cancelled` event, and so its e-mail); deactivated users' tokens are refused.
- group `reservation-service-mailer`: `reservation-events` (our own) queue the notification mail.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import String, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB, insert

from servicekit.auth import revocation_handlers
from servicekit.consumer import EventConsumer
from servicekit.db import db

from . import series, services, waitlist
from .directory import replica_values
from .mail import queue_notifications
from .models import RoomReplica, UserReplica

GROUP_ID = "reservation-service"
MAILER_GROUP_ID = "reservation-service-mailer"


def upsert_room(envelope: dict, *, deleted: bool = False) -> None:
    data = envelope["data"]
    values = replica_values(int(data["id"]), data, deleted=deleted)
    db.session.execute(
        insert(RoomReplica).values(**values).on_conflict_do_update(index_elements=[RoomReplica.room_id], set_=values)
    )


def on_room_deleted(envelope: dict) -> None:
    upsert_room(envelope, deleted=True)
    waitlist.expire_for_room(int(envelope["data"]["id"]))
    services.cancel_future_reservations(room_id=int(envelope["data"]["id"]))


def upsert_user(envelope: dict) -> None:
    data = envelope["data"]
    values = {
        "user_id": int(data["id"]),
        "email": data["email"],
        "full_name": data["full_name"],
        "is_active": bool(data["is_active"]),
    }
    db.session.execute(
        insert(UserReplica).values(**values).on_conflict_do_update(index_elements=[UserReplica.user_id], set_=values)
    )


_revocation = revocation_handlers()


def on_user_updated(envelope: dict) -> None:
    upsert_user(envelope)
    _revocation["user.updated"](envelope)


def on_user_deactivated(envelope: dict) -> None:
    upsert_user(envelope)
    _revocation["user.deactivated"](envelope)
    services.cancel_future_reservations(user_id=int(envelope["data"]["id"]))


HANDLERS = {
    "room-events": {
        "room.created": upsert_room,
        "room.updated": upsert_room,
        "room.deleted": on_room_deleted,
    },
    "user-events": {
        "user.registered": upsert_user,
        "user.updated": on_user_updated,
        "user.deactivated": on_user_deactivated,
    },
}


# The snapshot the owner was told about before (locked, read as of the statement's start) and the new one
# stored over it, in one round trip.
_SWAP_SNAPSHOT = text(
    "WITH previous AS (SELECT snapshot FROM notified_reservations WHERE reservation_id = :reservation_id FOR UPDATE),"
    " stored AS (INSERT INTO notified_reservations (reservation_id, snapshot) VALUES (:reservation_id, :snapshot)"
    " ON CONFLICT (reservation_id) DO UPDATE SET snapshot = EXCLUDED.snapshot)"
    " SELECT snapshot FROM previous"
).bindparams(bindparam("reservation_id", type_=String), bindparam("snapshot", type_=JSONB))


def swap_snapshot(reservation_id: str, data: dict) -> dict | None:
    """Store the state the owner is being told about; return the one they were told before."""
    return db.session.execute(_SWAP_SNAPSHOT, {"reservation_id": reservation_id, "snapshot": data}).scalar_one_or_none()


def notify(envelope: dict) -> None:
    data = envelope["data"]
    previous = swap_snapshot(str(data["id"]), data)
    if series.told_in_series_mail(envelope["event_type"], data):
        return
    queue_notifications(envelope["event_id"], envelope["event_type"], data, previous)


def notify_series(envelope: dict) -> None:
    """One mail for a whole series booked or cancelled (its occurrences' own events send none)."""
    queue_notifications(envelope["event_id"], envelope["event_type"], envelope["data"], None)


MAIL_HANDLERS = {
    "reservation-events": {
        "reservation.created": notify,
        "reservation.updated": notify,
        "reservation.cancelled": notify,
        "reservation.released": notify,
        "reservation.series_created": notify_series,
        "reservation.series_cancelled": notify_series,
    }
}


# The only producer believed on each topic (a forged envelope from anyone else is parked).
OWNERS = {"user-events": "user-service", "room-events": "room-service", "reservation-events": "reservation-service"}


def make_consumer(app: Flask) -> EventConsumer:
    return EventConsumer(app, GROUP_ID, HANDLERS, owners=OWNERS)


def make_mail_consumer(app: Flask) -> EventConsumer:
    # Many attempts: the owner's user.registered may arrive after their first booking.
    return EventConsumer(app, MAILER_GROUP_ID, MAIL_HANDLERS, owners=OWNERS, max_attempts=8)
