"""user-service's consumer: `reservation-events` feed each user's booking statistics; nothing else is needed."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from sqlalchemy.dialects.postgresql import insert

from servicekit.consumer import EventConsumer
from servicekit.db import db

from .models import BookingRecord

GROUP_ID = "user-service"


def record_booking(envelope: dict) -> None:
    data = envelope["data"]
    values = {
        "reservation_id": str(data["id"]),
        "user_id": int(data["user_id"]),
        "start_time": datetime.fromisoformat(data["start_time"]),
        "end_time": datetime.fromisoformat(data["end_time"]),
        "status": data["status"],
    }
    db.session.execute(
        insert(BookingRecord).values(**values).on_conflict_do_update(index_elements=[BookingRecord.reservation_id], set_=values)
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
