"""Booking rules. No Flask here: routes pass the caller, the parsed request and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from servicekit.auth import Principal
from servicekit.db import db, utcnow
from servicekit.events import record_event
from servicekit.problems import Conflict, Forbidden, NotFound, ValidationFailed

from .directory import RoomDirectory, RoomInfo, UserDirectory
from .models import Reservation
from .schemas import ReservationCreate, ReservationListQuery, ReservationUpdate

TOPIC = "reservation-events"
PRODUCER = "reservation-service"
EXCLUSION_VIOLATION = "23P01"
MAX_SCHEDULE_DAYS = 92


@dataclass(frozen=True)
class BookingSettings:
    max_duration: timedelta
    horizon: timedelta
    rooms: RoomDirectory
    users: UserDirectory


class BookingConflict(Conflict):
    type = "/problems/booking-conflict"
    title = "Booking Conflict"

    def __init__(self, conflicts: list[Reservation]):
        super().__init__(
            "The room is already booked for part of this time.",
            conflicts=[
                {"reservation_id": r.id, "start_time": r.start_time.isoformat(), "end_time": r.end_time.isoformat()}
                for r in conflicts
            ],
        )


def as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def publish(event_type: str, reservation: Reservation) -> None:
    record_event(TOPIC, reservation.id, event_type, reservation.to_dict(), PRODUCER)


def _check_times(start: datetime, end: datetime, settings: BookingSettings, now: datetime) -> None:
    errors = []
    if end <= start:
        errors.append({"field": "end_time", "message": "Must be after start_time."})
    if start < now:
        errors.append({"field": "start_time", "message": "Must not be in the past."})
    if end - start > settings.max_duration:
        errors.append(
            {
                "field": "end_time",
                "message": f"A booking lasts at most {int(settings.max_duration.total_seconds() // 60)} minutes.",
            }
        )
    if start > now + settings.horizon:
        errors.append({"field": "start_time", "message": f"Bookings open at most {settings.horizon.days} days ahead."})
    if errors:
        raise ValidationFailed(errors)


def _check_room(room: RoomInfo | None, attendees: int) -> RoomInfo:
    if room is None or room.deleted:
        raise ValidationFailed.single("room_id", "No such room.")
    if not room.is_active:
        raise ValidationFailed.single("room_id", "This room is not open for booking.")
    if attendees > room.capacity:
        raise ValidationFailed.single("attendees", f"The room holds {room.capacity} people; {attendees} attendees were given.")
    return room


def find_conflicts(room_id: int, start: datetime, end: datetime, exclude_id: int | None = None) -> list[Reservation]:
    stmt = (
        select(Reservation)
        .where(
            Reservation.room_id == room_id,
            Reservation.status == "confirmed",
            Reservation.during.op("&&")(func.tstzrange(start, end, "[)")),
        )
        .order_by(Reservation.start_time)
    )
    if exclude_id is not None:
        stmt = stmt.where(Reservation.id != exclude_id)
    return list(db.session.execute(stmt).scalars())


def _flush_or_conflict(room_id: int, start: datetime, end: datetime, exclude_id: int | None) -> None:
    """Flush; a clash caught by the exclusion constraint (a race lost at the database) is the same 409."""
    try:
        db.session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != EXCLUSION_VIOLATION:
            raise
        db.session.rollback()
        raise BookingConflict(find_conflicts(room_id, start, end, exclude_id)) from None


def create_reservation(
    principal: Principal, request: ReservationCreate, bearer: str, settings: BookingSettings, on_created=None
) -> Reservation:
    start, end = as_utc(request.start_time), as_utc(request.end_time)
    _check_times(start, end, settings, utcnow())
    _check_room(settings.rooms.lookup(request.room_id, bearer), len(request.attendees))
    settings.users.lookup(principal.user_id, bearer)  # learn the owner's e-mail for notifications
    clashes = find_conflicts(request.room_id, start, end)
    if clashes:
        raise BookingConflict(clashes)
    reservation = Reservation(
        room_id=request.room_id,
        user_id=principal.user_id,
        title=request.title,
        description=request.description,
        start_time=start,
        end_time=end,
        attendees=request.attendees,
        status="confirmed",
    )
    db.session.add(reservation)
    _flush_or_conflict(request.room_id, start, end, None)  # the INSERT returns the server's defaults
    publish("reservation.created", reservation)
    if on_created:
        on_created(reservation)
    db.session.commit()
    return reservation


def get_reservation(reservation_id: int, principal: Principal, *, for_update: bool = False) -> Reservation:
    """Load a reservation its owner or an admin may see (403 for anyone else)."""
    reservation = db.session.get(Reservation, reservation_id, with_for_update=for_update)
    if reservation is None:
        raise NotFound(f"Reservation {reservation_id} does not exist.")
    if reservation.user_id != principal.user_id and not principal.is_admin:
        raise Forbidden("You may only access your own reservations.")
    return reservation


def update_reservation(
    reservation_id: int, principal: Principal, changes: ReservationUpdate, bearer: str, settings: BookingSettings
) -> Reservation:
    sent = changes.model_fields_set
    for name in ("room_id", "title", "start_time", "end_time", "attendees"):
        if name in sent and getattr(changes, name) is None:
            raise ValidationFailed.single(name, "Must not be null.")
    current = get_reservation(reservation_id, principal)
    if current.status == "cancelled":
        raise Conflict("A cancelled reservation cannot be changed.")
    room_id = changes.room_id if "room_id" in sent else current.room_id
    start = as_utc(changes.start_time) if "start_time" in sent else current.start_time
    end = as_utc(changes.end_time) if "end_time" in sent else current.end_time
    attendees = changes.attendees if "attendees" in sent else list(current.attendees)
    moved = (room_id, start, end) != (current.room_id, current.start_time, current.end_time)
    if moved:
        _check_times(start, end, settings, utcnow())
    if moved or len(attendees) > len(current.attendees):
        _check_room(settings.rooms.lookup(room_id, bearer), len(attendees))
    # Network calls are done; now one short transaction.
    reservation = get_reservation(reservation_id, principal, for_update=True)
    if reservation.status == "cancelled":
        raise Conflict("A cancelled reservation cannot be changed.")
    new_values = {"room_id": room_id, "start_time": start, "end_time": end, "attendees": attendees}
    for name in ("title", "description"):
        if name in sent:
            new_values[name] = getattr(changes, name)
    changed = {name: value for name, value in new_values.items() if getattr(reservation, name) != value}
    if not changed:
        db.session.commit()
        return reservation
    if moved:
        clashes = find_conflicts(room_id, start, end, exclude_id=reservation.id)
        if clashes:
            raise BookingConflict(clashes)
    for name, value in changed.items():
        setattr(reservation, name, value)
    reservation.updated_at = utcnow()
    _flush_or_conflict(room_id, start, end, reservation.id)
    db.session.refresh(reservation)
    publish("reservation.updated", reservation)
    db.session.commit()
    return reservation


def cancel_reservation(reservation_id: int, principal: Principal) -> None:
    """Cancel (idempotent: cancelling a cancelled reservation changes nothing)."""
    reservation = get_reservation(reservation_id, principal, for_update=True)
    if reservation.status == "cancelled":
        db.session.commit()
        return
    if reservation.end_time <= utcnow():
        raise Conflict("This reservation is already over; it stays in the history.")
    _cancel(reservation)
    db.session.commit()


def _cancel(reservation: Reservation) -> None:
    reservation.status = "cancelled"
    reservation.updated_at = utcnow()
    db.session.flush()
    publish("reservation.cancelled", reservation)


def cancel_future_reservations(*, room_id: int | None = None, user_id: int | None = None) -> int:
    """Cancel the confirmed reservations that have not started yet, of a room or of a user (in the caller's transaction)."""
    stmt = select(Reservation).where(Reservation.status == "confirmed", Reservation.start_time > utcnow())
    if room_id is not None:
        stmt = stmt.where(Reservation.room_id == room_id)
    if user_id is not None:
        stmt = stmt.where(Reservation.user_id == user_id)
    reservations = list(db.session.execute(stmt.order_by(Reservation.id).with_for_update()).scalars())
    for reservation in reservations:
        _cancel(reservation)
    return len(reservations)


def list_reservations(principal: Principal, query: ReservationListQuery) -> Select:
    stmt = select(Reservation).order_by(Reservation.start_time, Reservation.id)
    if principal.is_admin:
        if query.user_id is not None:
            stmt = stmt.where(Reservation.user_id == query.user_id)
    else:
        if query.user_id is not None and query.user_id != principal.user_id:
            raise Forbidden("Only administrators may list other users' reservations.")
        stmt = stmt.where(Reservation.user_id == principal.user_id)
    if query.room_id is not None:
        stmt = stmt.where(Reservation.room_id == query.room_id)
    if query.status is not None:
        stmt = stmt.where(Reservation.status == query.status)
    if query.from_ is not None:
        stmt = stmt.where(Reservation.end_time > as_utc(query.from_))
    if query.to is not None:
        stmt = stmt.where(Reservation.start_time < as_utc(query.to))
    return stmt


def room_schedule(
    room_id: int, start: datetime | None, end: datetime | None, bearer: str, settings: BookingSettings
) -> list[Reservation]:
    start = as_utc(start) if start else utcnow()
    try:
        end = as_utc(end) if end else start + timedelta(days=7)
    except OverflowError:
        raise ValidationFailed.single("from", "Out of range.") from None
    if end <= start:
        raise ValidationFailed.single("to", "Must be after from.")
    if end - start > timedelta(days=MAX_SCHEDULE_DAYS):
        raise ValidationFailed.single("to", f"The window is at most {MAX_SCHEDULE_DAYS} days.")
    room = settings.rooms.lookup(room_id, bearer)
    if room is None or room.deleted:
        raise NotFound(f"Room {room_id} does not exist.")
    return find_conflicts(room_id, start, end)
