"""Finding a room: free rooms for a window, free/busy of many rooms, and suggestions for a refused booking.

Answered from this service's own tables (the room read model, reservations, blackouts), never with a
call to room-service: the overlap tests use the GiST indexes (across rooms, "which rooms are busy at this
time", the time-keyed ix_reservations_during_confirmed, room_id included; per room the no-overlap exclusion
constraint's (room_id, during); ix_blackouts_room_id_during). Opening hours are applied
in Python, in each room's zone (policies.py), once per zone, hours and window (cached). Free/busy is merged,
sorted and serialised to JSON by PostgreSQL: the service does not build thousands of intervals itself.
No Flask here.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Row, Select, and_, exists, func, or_, select, text

from servicekit.db import db, like_substring
from servicekit.problems import ValidationFailed

from .directory import RoomInfo
from .models import Blackout, Reservation, RoomReplica
from .policies import (
    BookingPolicy,
    merged_intervals,
    open_intervals,
    opening_hours_violation,
    policy_violations,
    within_calendar,
    zone_of,
)

MAX_AVAILABILITY_DAYS = 7
MAX_FREE_BUSY_DAYS = 31
MAX_FREE_BUSY_ROOMS = 50
SUGGESTION_SEARCH_DAYS = 14  # how far before and after the requested start the same room is searched
# An earlier time is suggested only if it starts at least this long from now: time to read the 409 and book it.
SUGGESTION_LEAD = timedelta(minutes=5)
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


def booked_in(room_id_column, start, end):
    """A confirmed booking of the room overlaps [start, end) (values or columns; the GiST indexes answer it)."""
    return exists().where(
        Reservation.room_id == room_id_column,
        Reservation.status == "confirmed",
        Reservation.during.op("&&")(_window(start, end)),
    )


def blacked_out_in(room_id_column, start, end):
    """A blackout of the room, or of every room, overlaps [start, end)."""
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
    columns=(RoomReplica,),
) -> Select:
    """Active rooms with no confirmed booking and no blackout in [start, end), smallest first."""
    stmt = select(*columns).where(
        RoomReplica.is_active.is_(True),
        RoomReplica.deleted.is_(False),
        ~booked_in(RoomReplica.room_id, start, end),
        ~blacked_out_in(RoomReplica.room_id, start, end),
    )
    if min_capacity is not None:
        stmt = stmt.where(RoomReplica.capacity >= min_capacity)
    wanted = sorted({name.strip().lower() for name in equipment if name.strip()})
    if wanted:
        stmt = stmt.where(RoomReplica.equipment.contains(wanted))
    if location:
        stmt = stmt.where(func.lower(RoomReplica.location).like(like_substring(location)))
    return stmt.order_by(RoomReplica.capacity, RoomReplica.room_id)


@lru_cache(maxsize=4096)
def _open_throughout(timezone: str | None, open_hours_json: str, start: datetime, end: datetime) -> bool:
    """Whether opening hours (as JSON) in `timezone` cover [start, end); rooms sharing a policy share the answer."""
    return opening_hours_violation("", timezone, json.loads(open_hours_json), start, end) is None


# What availability reads of each free candidate: its id, zone and opening hours (JSON text, null for none).
CANDIDATE_COLUMNS = (RoomReplica.room_id, RoomReplica.timezone, RoomReplica.booking_policy["open_hours"].astext)
# What an availability page shows of a room (AvailableRoom), read as plain rows, not ORM objects.
ROOM_COLUMNS = (
    RoomReplica.room_id,
    RoomReplica.name,
    RoomReplica.capacity,
    RoomReplica.location,
    RoomReplica.equipment,
    RoomReplica.timezone,
)


@dataclass(frozen=True)
class RoomsPage:
    items: list[Row]
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
    # Every free candidate, smallest first, as (id, zone, opening hours as JSON text or null): the opening
    # hours are checked in Python (zones), then only the page's rooms are read in full.
    candidates = db.session.execute(
        free_rooms_query(
            start,
            end,
            min_capacity=min_capacity,
            equipment=equipment,
            location=location,
            columns=CANDIDATE_COLUMNS,
        )
    )
    open_ids = [
        room_id
        for room_id, timezone, open_hours in candidates
        if open_hours is None or _open_throughout(timezone, open_hours, start, end)
    ]
    first = (page - 1) * per_page
    page_ids = open_ids[first : first + per_page]
    if not page_ids:
        return RoomsPage([], len(open_ids))
    rows = {row.room_id: row for row in db.session.execute(select(*ROOM_COLUMNS).where(RoomReplica.room_id.in_(page_ids)))}
    return RoomsPage([rows[room_id] for room_id in page_ids], len(open_ids))


@lru_cache(maxsize=1024)
def _closed_in_zone(
    timezone: str | None, open_hours_json: str, start: datetime, end: datetime
) -> tuple[tuple[datetime, datetime], ...]:
    """Closed intervals within [start, end) of opening hours (as JSON) in `timezone`; rooms sharing a zone
    and a policy share the answer."""
    zone = zone_of(timezone)
    opened = open_intervals(
        json.loads(open_hours_json), zone, start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date()
    )
    closed, cursor = [], start
    for opens, closes in opened:
        if opens > cursor:
            closed.append((cursor, min(opens, end)))
        cursor = max(cursor, closes)
        if cursor >= end:
            break
    if cursor < end:
        closed.append((cursor, end))
    return tuple((a, b) for a, b in closed if b > a)


def _iso_json(json_timestamp: str) -> str:
    """SQL turning `to_json(<UTC timestamp>)::text` ("2026-01-05T09:00:00", fractions trimmed: ".25") into the
    start of the JSON string `datetime.isoformat()` gives for the instant, up to its "+00:00": six digits of
    fraction when there is one. to_json writes ISO 8601 whatever the session's DateStyle, and costs less than
    to_char."""
    return (
        f"CASE WHEN length({json_timestamp}) = 21 THEN left({json_timestamp}, 20) "
        f"ELSE rpad(left({json_timestamp}, -1), 27, '0') END"
    )


# Each asked room's busy intervals as the text of a JSON array's items, built by PostgreSQL: the room's
# reservations (through the exclusion constraint's room-first GiST index), blackouts of the room or of every
# room, and the closed hours computed in Python (passed as three arrays), clipped to the window, sorted.
# The service neither builds nor serialises thousands of intervals. (Colons in literals escaped for text().)
FREE_BUSY_SQL = text(
    f"""
WITH busy AS (
    SELECT room_id, greatest(start_time, :start) AS starts, least(end_time, :end) AS ends, 'reservation' AS kind
    FROM reservations
    WHERE room_id = ANY (CAST(:room_ids AS bigint[])) AND status = 'confirmed' AND during && tstzrange(:start, :end, '[)')
    UNION ALL
    SELECT asked.room_id, greatest(blackouts.start_time, :start), least(blackouts.end_time, :end), 'blackout'
    FROM blackouts JOIN unnest(CAST(:room_ids AS bigint[])) AS asked (room_id)
        ON blackouts.room_id = asked.room_id OR blackouts.room_id IS NULL
    WHERE blackouts.during && tstzrange(:start, :end, '[)')
    UNION ALL
    SELECT room_id, starts, ends, 'closed'
    FROM unnest(CAST(:closed_rooms AS bigint[]), CAST(:closed_starts AS timestamptz[]), CAST(:closed_ends AS timestamptz[]))
        AS closed (room_id, starts, ends)
), utc AS (
    SELECT room_id, starts, ends, kind,
           to_json(starts AT TIME ZONE 'UTC')::text AS starts_json, to_json(ends AT TIME ZONE 'UTC')::text AS ends_json
    FROM busy
)
SELECT room_id,
       string_agg(
           concat(
               '{{"start_time"\\:', {_iso_json("starts_json")}, '+00\\:00","end_time"\\:', {_iso_json("ends_json")},
               '+00\\:00","kind"\\:"', kind, '"}}'
           ),
           ',' ORDER BY starts, ends, kind COLLATE "C"
       )
FROM utc
GROUP BY room_id
"""
)


def free_busy_statement(
    room_ids: list[int], start: datetime, end: datetime, closed: dict[int, tuple[tuple[datetime, datetime], ...]]
):
    """The free/busy query with its parameters bound (also what the bench EXPLAINs)."""
    closed_rooms, closed_starts, closed_ends = [], [], []
    for room_id, intervals in closed.items():
        for opens, closes in intervals:
            closed_rooms.append(room_id)
            closed_starts.append(opens)
            closed_ends.append(closes)
    return FREE_BUSY_SQL.bindparams(
        room_ids=room_ids,
        start=start,
        end=end,
        closed_rooms=closed_rooms,
        closed_starts=closed_starts,
        closed_ends=closed_ends,
    )


# Rooms of one free/busy question that the read model does not know yet and room-service is asked about (a
# room created a moment ago, before its `room.created` arrived). More unknown rooms than this are a 422 at once:
# one request does not turn into dozens of calls to room-service.
MAX_FREE_BUSY_LOOKUPS = 3


def free_busy_json(room_ids: list[int], start: datetime, end: datetime, lookup=None) -> str:
    """`{"rooms": [{"room_id", "timezone", "busy": [{"start_time", "end_time", "kind"}]}]}` as JSON text: the
    busy intervals (reservation, blackout, closed) of each room in [start, end), clipped to it, earliest first.
    An inactive room is closed for the whole window (nobody can book it). `lookup(room_id)`: the room from
    room-service (`RoomDirectory.lookup`) when the read model does not know it yet, None if it does not exist."""
    check_window(start, end, start_field="from", end_field="to", max_days=MAX_FREE_BUSY_DAYS)
    room_ids = list(dict.fromkeys(room_ids))
    if len(room_ids) > MAX_FREE_BUSY_ROOMS:
        raise ValidationFailed.single("room_id", f"At most {MAX_FREE_BUSY_ROOMS} rooms.")
    rooms = {
        room_id: (timezone, open_hours, is_active)
        for room_id, timezone, open_hours, is_active in db.session.execute(
            select(*CANDIDATE_COLUMNS, RoomReplica.is_active).where(
                RoomReplica.room_id.in_(room_ids), RoomReplica.deleted.is_(False)
            )
        )
    }
    unknown = [room_id for room_id in room_ids if room_id not in rooms]
    if unknown and lookup is not None and len(unknown) <= MAX_FREE_BUSY_LOOKUPS:
        for room_id in unknown:
            room = lookup(room_id)
            if room is not None and not room.deleted:
                open_hours = (room.booking_policy or {}).get("open_hours")
                rooms[room_id] = (room.timezone, None if open_hours is None else json.dumps(open_hours), room.is_active)
        unknown = [room_id for room_id in room_ids if room_id not in rooms]
    if unknown:
        raise ValidationFailed.single("room_id", "Unknown rooms: " + ", ".join(map(str, unknown)) + ".")
    closed = {
        room_id: ((start, end),) if not is_active else _closed_in_zone(timezone, open_hours, start, end)
        for room_id, (timezone, open_hours, is_active) in rooms.items()
        if open_hours is not None or not is_active
    }
    busy = dict(db.session.execute(free_busy_statement(room_ids, start, end, closed)).all())
    rooms_json = (
        f'{{"room_id":{room_id},"timezone":{json.dumps(rooms[room_id][0])},"busy":[{busy.get(room_id, "")}]}}'
        for room_id in room_ids
    )
    return '{"rooms":[' + ",".join(rooms_json) + "]}"


def _busy_of_room(room_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    reservations = select(Reservation.start_time, Reservation.end_time).where(
        Reservation.room_id == room_id, Reservation.status == "confirmed", Reservation.during.op("&&")(_window(start, end))
    )
    blackouts = select(Blackout.start_time, Blackout.end_time).where(
        or_(Blackout.room_id == room_id, Blackout.room_id.is_(None)), Blackout.during.op("&&")(_window(start, end))
    )
    rows = db.session.execute(reservations.union_all(blackouts)).all()
    return sorted((a, b) for a, b in rows)


def _nearest_free_slot(
    room: RoomInfo, start: datetime, end: datetime, policy: BookingPolicy, now: datetime
) -> tuple[datetime, datetime] | None:
    """The start nearest to `start`, before or after it (of two as near, the later), at which the room is free
    and open for the same length. A free slot begins where something ends (a booking, a blackout, closed
    hours) or ends where something begins, so those are the only starts to try."""
    length = end - start
    first_start = min(start, max(start - timedelta(days=SUGGESTION_SEARCH_DAYS), now + SUGGESTION_LEAD))
    last_start = min(start + timedelta(days=SUGGESTION_SEARCH_DAYS), now + timedelta(days=policy.horizon_days))
    busy = _busy_of_room(room.room_id, first_start, last_start + length)
    candidates = {start - length, start + length} | {b for _, b in busy} | {a - length for a, _ in busy}
    if policy.open_hours is not None:
        zone = zone_of(room.timezone)
        opened = open_intervals(
            policy.open_hours,
            zone,
            first_start.astimezone(zone).date(),
            last_start.astimezone(zone).date() + timedelta(days=1),
        )
        candidates |= {opens for opens, _ in opened} | {closes - length for _, closes in opened}
    nearest_first = sorted(
        (c for c in candidates if first_start <= c < start or start < c <= last_start),
        key=lambda c: (abs(c - start), c < start),
    )
    merged = merged_intervals(busy)  # disjoint and in order: one bisect finds a clash
    starts = [a for a, _ in merged]
    for candidate in nearest_first:
        finish = candidate + length
        before = bisect.bisect_left(starts, finish) - 1  # the last busy interval starting before the finish
        if before >= 0 and merged[before][1] > candidate:
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
    """Up to three bookings that would succeed now: this room at its nearest free time of the same length
    (before or after the requested one), then other fitting rooms at the requested time (smallest first)."""
    found = []
    same = _nearest_free_slot(room, start, end, BookingPolicy.of_room(room.booking_policy, fallback), now)
    if same:
        found.append({"room_id": room.room_id, "start_time": same[0].isoformat(), "end_time": same[1].isoformat()})
    for other in _other_rooms(room, start, end, attendees, fallback, now, MAX_SUGGESTIONS - len(found)):
        found.append({"room_id": other.room_id, "start_time": start.isoformat(), "end_time": end.isoformat()})
    return found
