"""Blackouts: times when a room, or every room, cannot be booked. No Flask here."""

from __future__ import annotations

from sqlalchemy import bindparam, or_, select

from servicekit.auth import Principal
from servicekit.db import db, utcnow
from servicekit.pagination import FilteredList
from servicekit.problems import NotFound, ValidationFailed

from . import locks, services
from .directory import RoomDirectory
from .models import Blackout
from .schemas import BlackoutCreate, BlackoutListQuery, BlackoutOut


def create_blackout(principal: Principal, request: BlackoutCreate, bearer: str, rooms: RoomDirectory) -> tuple[Blackout, int]:
    """Store the blackout and cancel the confirmed reservations it overlaps, in one transaction.

    Returns the blackout and how many reservations it cancelled (each with its event, so its e-mail)."""
    start, end = request.start_time, request.end_time
    services.check_times(start, end, utcnow())
    if request.room_id is not None:
        room = rooms.lookup(request.room_id, bearer)
        if room is None or room.deleted:
            raise ValidationFailed.single("room_id", "No such room.")
    # See locks.py: no booking of the room can commit between here and our commit.
    locks.lock_for_blackout(request.room_id)
    blackout = Blackout(
        room_id=request.room_id, start_time=start, end_time=end, reason=request.reason, created_by=principal.user_id
    )
    db.session.add(blackout)
    db.session.flush()
    db.session.refresh(blackout)
    cancelled = services.cancel_reservations_in_blackout(blackout)
    db.session.commit()
    return blackout, cancelled


def list_blackouts(query: BlackoutListQuery) -> dict:
    """A page of blackouts, earliest first."""
    values = {"room_id": query.room_id, "from_": query.from_, "to": query.to}
    return _LIST.page(
        db.session, query, values, lambda b: BlackoutOut.model_validate(b, from_attributes=True).model_dump(mode="json")
    )


_LIST = FilteredList(
    lambda: select(Blackout).order_by(Blackout.start_time, Blackout.id),
    room_id=lambda: or_(Blackout.room_id == bindparam("room_id"), Blackout.room_id.is_(None)),  # the room's, and global ones
    from_=lambda: Blackout.end_time > bindparam("from_"),
    to=lambda: Blackout.start_time < bindparam("to"),
)


def delete_blackout(blackout_id: int) -> None:
    """The room can be booked again then; reservations it cancelled stay cancelled."""
    blackout = db.session.get(Blackout, blackout_id, with_for_update=True)
    if blackout is None:
        raise NotFound(f"Blackout {blackout_id} does not exist.")
    db.session.delete(blackout)
    db.session.commit()
