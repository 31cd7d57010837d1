"""Finding a room: free rooms for a window, free/busy of many rooms, and suggestions for a refused booking.

Answered from this service's own tables (the room read model, reservations, blackouts), never with a
call to room-service: the overlap tests use the GiST indexes (the no-overlap exclusion constraint on
confirmed reservations and ix_blackouts_room_id_during). Opening hours are applied in Python, in each
room's zone (policies.py). No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, exists, func, or_, select

from servicekit.db import db, like_substring
from servicekit.problems import ValidationFailed

from .directory import RoomInfo
from .models import Blackout, Reservation, RoomReplica
from .policies import (
    BookingPolicy,
    open_intervals,
    opening_hours_violation,
    policy_violations,
    within_calendar,
    zone_of,
)

MAX_AVAILABILITY_DAYS = 7
MAX_FREE_BUSY_DAYS = 31
MAX_FREE_BUSY_ROOMS = 50
SUGGESTION_SEARCH_DAYS = 14  # how far after the requested start the same room is searched
MAX_SUGGESTIONS = 3


def check_window(start: datetime, end: datetime, *, start_field: str, end_field: str, max_days: int) -> None:
    if not within_calendar(start, end):
        raise ValidationFailed.single(start_field if start.year <= 1 else end_field, "Out of range.")
    if end <= start:
        raise ValidationFailed.single(end_field, f"Must be after {start_field}.")
    if end - start > timedelta(days=max_days):
        raise ValidationFailed.single(end_field, f"The window is at most {max_days} days.")


def _window(start: datetime, end: datetime):
    return func.tstzrange(start, end, "[)")


def _booked(room_id_column, start: datetime, end: datetime):
    return exists().where(
        Reservation.room_id == room_id_column,
        Reservation.status == "confirmed",
        Reservation.during.op("&&")(_window(start, end)),
    )


def _blacked_out(room_id_column, start: datetime, end: datetime):
    return exists().where(
        or_(Blackout.room_id == room_id_column, Blackout.room_id.is_(None)),
        Blackout.during.op("&&")(_window(start, end)),
    )


def free_rooms_query(
    start: datetime,
    end: datetime,
    *,
    min_capacity: int | None = None,
    equipment: list[str] = (),
    location: str | None = None,
) -> Select:
    """Active rooms with no confirmed booking and no blackout in [start, end), smallest first."""
    stmt = select(RoomReplica).where(
        RoomReplica.is_active.is_(True),
        RoomReplica.deleted.is_(False),
        ~_booked(RoomReplica.room_id, start, end),
        ~_blacked_out(RoomReplica.room_id, start, end),
    )
    if min_capacity is not None:
        stmt = stmt.where(RoomReplica.capacity >= min_capacity)
    wanted = sorted({name.strip().lower() for name in equipment if name.strip()})
    if wanted:
        stmt = stmt.where(RoomReplica.equipment.contains(wanted))
    if location:
        stmt = stmt.where(func.lower(RoomReplica.location).like(like_substring(location)))
    return stmt.order_by(RoomReplica.capacity, RoomReplica.room_id)


def _open_for(replica: RoomReplica, start: datetime, end: datetime) -> bool:
    open_hours = (replica.booking_policy or {}).get("open_hours")
    return opening_hours_violation(replica.name, replica.timezone, open_hours, start, end) is None


@dataclass(frozen=True)
class RoomsPage:
    items: list[RoomReplica]
    total: int


def available_rooms(
    start: datetime,
    end: datetime,
    page: int,
    per_page: int,
    *,
    min_capacity: int | None = None,
    equipment: list[str] = (),
    location: str | None = None,
) -> RoomsPage:
    check_window(start, end, start_field="start_time", end_field="end_time", max_days=MAX_AVAILABILITY_DAYS)
    candidates = db.session.execute(
        free_rooms_query(start, end, min_capacity=min_capacity, equipment=equipment, location=location)
    ).scalars()
    rooms = [room for room in candidates if _open_for(room, start, end)]
    first = (page - 1) * per_page
    return RoomsPage(rooms[first : first + per_page], len(rooms))


def _clip(start: datetime, end: datetime, window_start: datetime, window_end: datetime) -> tuple[datetime, datetime]:
    return max(start, window_start), min(end, window_end)


def closed_intervals(replica: RoomReplica, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """When the room is closed within [start, end), from its opening hours in its zone."""
    open_hours = (replica.booking_policy or {}).get("open_hours")
    if open_hours is None:
        return []
    zone = zone_of(replica.timezone)
    opened = open_intervals(open_hours, zone, start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date())
    closed, cursor = [], start
    for opens, closes in opened:
        if opens > cursor:
            closed.append((cursor, min(opens, end)))
        cursor = max(cursor, closes)
        if cursor >= end:
            break
    if cursor < end:
        closed.append((cursor, end))
    return [(a, b) for a, b in closed if b > a]


def free_busy(room_ids: list[int], start: datetime, end: datetime) -> list[dict]:
    """Busy intervals (reservation, blackout, closed) of each room in [start, end), clipped to it."""
    check_window(start, end, start_field="from", end_field="to", max_days=MAX_FREE_BUSY_DAYS)
    room_ids = list(dict.fromkeys(room_ids))
    if len(room_ids) > MAX_FREE_BUSY_ROOMS:
        raise ValidationFailed.single("room_id", f"At most {MAX_FREE_BUSY_ROOMS} rooms.")
    replicas = {
        replica.room_id: replica
        for replica in db.session.execute(
            select(RoomReplica).where(RoomReplica.room_id.in_(room_ids), RoomReplica.deleted.is_(False))
        ).scalars()
    }
    unknown = [room_id for room_id in room_ids if room_id not in replicas]
    if unknown:
        raise ValidationFailed.single("room_id", "Unknown rooms: " + ", ".join(map(str, unknown)) + ".")
    busy: dict[int, list[tuple[datetime, datetime, str]]] = {room_id: [] for room_id in room_ids}
    reservations = db.session.execute(
        select(Reservation.room_id, Reservation.start_time, Reservation.end_time).where(
            Reservation.room_id.in_(room_ids),
            Reservation.status == "confirmed",
            Reservation.during.op("&&")(_window(start, end)),
        )
    ).all()
    for room_id, booked_from, booked_to in reservations:
        busy[room_id].append((*_clip(booked_from, booked_to, start, end), "reservation"))
    blackouts = db.session.execute(
        select(Blackout.room_id, Blackout.start_time, Blackout.end_time).where(
            or_(Blackout.room_id.in_(room_ids), Blackout.room_id.is_(None)), Blackout.during.op("&&")(_window(start, end))
        )
    ).all()
    for room_id, closed_from, closed_to in blackouts:
        for target in room_ids if room_id is None else [room_id]:
            busy[target].append((*_clip(closed_from, closed_to, start, end), "blackout"))
    result = []
    for room_id in room_ids:
        intervals = busy[room_id] + [(a, b, "closed") for a, b in closed_intervals(replicas[room_id], start, end)]
        result.append(
            {
                "room_id": room_id,
                "timezone": replicas[room_id].timezone,
                "busy": [
                    {"start_time": a.isoformat(), "end_time": b.isoformat(), "kind": kind} for a, b, kind in sorted(intervals)
                ],
            }
        )
    return result


def _busy_of_room(room_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    reservations = select(Reservation.start_time, Reservation.end_time).where(
        Reservation.room_id == room_id, Reservation.status == "confirmed", Reservation.during.op("&&")(_window(start, end))
    )
    blackouts = select(Blackout.start_time, Blackout.end_time).where(
        or_(Blackout.room_id == room_id, Blackout.room_id.is_(None)), Blackout.during.op("&&")(_window(start, end))
    )
    rows = db.session.execute(reservations.union_all(blackouts)).all()
    return sorted((a, b) for a, b in rows)


def _next_free_slot(
    room: RoomInfo, start: datetime, end: datetime, policy: BookingPolicy, now: datetime
) -> tuple[datetime, datetime] | None:
    """The nearest start after `start` at which the room is free and open for the same length."""
    length = end - start
    last_start = min(start + timedelta(days=SUGGESTION_SEARCH_DAYS), now + timedelta(days=policy.horizon_days))
    busy = _busy_of_room(room.room_id, start, last_start + length)
    candidates = {b for _, b in busy if b > start}
    if policy.open_hours is not None:
        zone = zone_of(room.timezone)
        opened = open_intervals(
            policy.open_hours, zone, start.astimezone(zone).date(), last_start.astimezone(zone).date() + timedelta(days=1)
        )
        candidates |= {opens for opens, _ in opened if opens > start}
    else:
        candidates.add(start + length)  # at worst, right after the requested slot
    for candidate in sorted(c for c in candidates if c <= last_start):
        finish = candidate + length
        if any(a < finish and candidate < b for a, b in busy):
            continue
        if not policy_violations(room.name, room.timezone, policy, candidate, finish, now):
            return candidate, finish
    return None


def _other_rooms(
    room: RoomInfo, start: datetime, end: datetime, attendees: int, fallback: BookingPolicy, now: datetime, limit: int
) -> list[RoomReplica]:
    """Other rooms that fit the request at the requested time: as big as needed, with the same equipment."""
    stmt = free_rooms_query(start, end, min_capacity=max(attendees, 1), equipment=list(room.equipment)).where(
        and_(RoomReplica.room_id != room.room_id)
    )
    fitting = []
    for other in db.session.execute(stmt.limit(50)).scalars():
        policy = BookingPolicy.of_room(other.booking_policy, fallback)
        if not policy_violations(other.name, other.timezone, policy, start, end, now):
            fitting.append(other)
            if len(fitting) == limit:
                break
    return fitting


def suggestions(
    room: RoomInfo, start: datetime, end: datetime, attendees: int, fallback: BookingPolicy, now: datetime
) -> list[dict]:
    """Up to three bookings that would succeed now: this room at its nearest free time of the same length,
    then other fitting rooms at the requested time (smallest first)."""
    found = []
    same = _next_free_slot(room, start, end, BookingPolicy.of_room(room.booking_policy, fallback), now)
    if same:
        found.append({"room_id": room.room_id, "start_time": same[0].isoformat(), "end_time": same[1].isoformat()})
    for other in _other_rooms(room, start, end, attendees, fallback, now, MAX_SUGGESTIONS - len(found)):
        found.append({"room_id": other.room_id, "start_time": start.isoformat(), "end_time": end.isoformat()})
    return found
