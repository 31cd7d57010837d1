"""Check-in and auto-release. No Flask here.

A booking can be checked in from CHECKIN_OPEN_MINUTES before its start to CHECKIN_GRACE_MINUTES after
it. In rooms whose policy has `auto_release`, a booking nobody checked in to by then is released by
the worker: status `released`, the slot free again (the exclusion constraint covers confirmed
bookings only), `reservation.released` published (so the owner is mailed), SEQUENCE one more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from servicekit.auth import Principal
from servicekit.db import db, utcnow
from servicekit.events import record_event
from servicekit.problems import Conflict

from . import services
from .models import Reservation, RoomReplica

# A worker that was down for longer does not release (and mail about) bookings older than this.
RELEASE_LOOKBACK = timedelta(days=1)
RELEASE_BATCH = 100


@dataclass(frozen=True)
class CheckInWindow:
    open_before: timedelta
    grace: timedelta

    def opens_at(self, reservation: Reservation) -> datetime:
        return reservation.start_time - self.open_before

    def closes_at(self, reservation: Reservation) -> datetime:
        return reservation.start_time + self.grace


class CheckInRefused(Conflict):
    type = "/problems/check-in-closed"
    title = "Check-in Not Possible"


def check_in(reservation_id: int, principal: Principal, window: CheckInWindow) -> tuple[Reservation, bool]:
    """Check in (owner or admin); returns the reservation and whether this call checked it in.
    Idempotent: a booking already checked in is answered as it is."""
    reservation = services.get_reservation(reservation_id, principal, for_update=True)
    if reservation.checked_in_at is not None:
        db.session.commit()
        return reservation, False
    opens, closes = window.opens_at(reservation), window.closes_at(reservation)
    times = {"opens_at": opens.isoformat(), "closes_at": closes.isoformat()}
    if reservation.status != "confirmed":
        raise CheckInRefused(f"This reservation is {reservation.status}; there is nothing to check in to.", **times)
    now = utcnow()
    if now < opens:
        raise CheckInRefused(f"Check-in opens at {opens.isoformat()} ({_minutes(window.open_before)} before the start).", **times)
    if now > closes:
        raise CheckInRefused(f"Check-in closed at {closes.isoformat()} ({_minutes(window.grace)} after the start).", **times)
    reservation.checked_in_at = now
    reservation.updated_at = now
    db.session.flush()
    services.publish("reservation.checked_in", reservation)
    db.session.commit()
    return reservation, True


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


def release_no_shows(grace: timedelta, *, now: datetime | None = None, limit: int = RELEASE_BATCH) -> list[int]:
    """Release the confirmed bookings in auto-release rooms nobody checked in to by start + `grace`;
    returns their ids. Rows are claimed with FOR UPDATE SKIP LOCKED and the status re-checked by the
    locking read, so with several workers each booking is released exactly once."""
    now = now or utcnow()
    deadline = now - grace
    auto_release = RoomReplica.booking_policy["auto_release"].as_boolean().is_(True)
    stmt = (
        select(Reservation)
        .join(RoomReplica, RoomReplica.room_id == Reservation.room_id)
        .where(
            Reservation.status == "confirmed",
            Reservation.checked_in_at.is_(None),
            Reservation.start_time <= deadline,
            Reservation.start_time > deadline - RELEASE_LOOKBACK,
            auto_release,
        )
        .order_by(Reservation.start_time, Reservation.id)
        .limit(limit)
        .with_for_update(of=Reservation, skip_locked=True)
    )
    released = []
    for reservation in db.session.execute(stmt).scalars():
        reservation.status = "released"
        reservation.updated_at = now
        reservation.sequence += 1
        db.session.flush()
        record_event(
            services.TOPIC,
            reservation.id,
            "reservation.released",
            {**reservation.to_dict(), "reason": "no_check_in", "grace_minutes": int(grace.total_seconds() // 60)},
            services.PRODUCER,
        )
        released.append(reservation.id)
    db.session.commit()
    return released
