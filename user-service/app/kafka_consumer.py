"""user-service's consumer: `reservation-events` feed each user's booking statistics; nothing else is needed."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert

from servicekit.consumer import EventConsumer
from servicekit.db import db

from .models import BookingRecord

GROUP_ID = "user-service"


# Built once (a statement per event cost as much to build as to run): the row, or its newer state.
_BOOKINGS = BookingRecord.__table__
_UPSERT = (
    insert(_BOOKINGS)
    .values({name: bindparam(name) for name in ("reservation_id", "user_id", "start_time", "end_time", "status")})
    .on_conflict_do_update(
        index_elements=[_BOOKINGS.c.reservation_id],
        set_={name: insert(_BOOKINGS).excluded[name] for name in ("user_id", "start_time", "end_time", "status")},
    )
)


def record_booking(envelope: dict) -> None:
    data = envelope["data"]
    db.session.execute(
        _UPSERT,
        {
            "reservation_id": str(data["id"]),
            "user_id": int(data["user_id"]),
            "start_time": datetime.fromisoformat(data["start_time"]),
            "end_time": datetime.fromisoformat(data["end_time"]),
            "status": data["status"],
        },
    )


HANDLERS = {
    "reservation-events": {
        "reservation.created": record_booking,
        "reservation.updated": record_booking,
        "reservation.cancelled": record_booking,
        "reservation.released": record_booking,  # a no-show: no longer confirmed
    }
}


# The only producer believed on each topic (a forged envelope from anyone else is parked).
OWNERS = {"reservation-events": "reservation-service"}


def make_consumer(app: Flask) -> EventConsumer:
    return EventConsumer(app, GROUP_ID, HANDLERS, owners=OWNERS)
