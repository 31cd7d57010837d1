"""Booking rules. No Flask here: routes pass the caller, the parsed request and the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import BigInteger, DateTime, Row, TextClause, bindparam, func, or_, select, text, true

from servicekit.auth import Principal
from servicekit.conditional import etag_for, require_match
from servicekit.db import LookAgain, db, flush_or_raise, retried, utcnow, violations_raise
from servicekit.events import record_event
from servicekit.pagination import FilteredList
from servicekit.problems import Conflict, Forbidden, NotFound, ValidationFailed

from . import availability, locks
from .directory import RoomDirectory, RoomInfo, UserDirectory, _room_info
from .models import Blackout, Reservation, RoomReplica, reservation_dict
from .policies import BookingPolicy, iso_weeks, plain_number, policy_violations
from .schemas import ReservationCreate, ReservationListQuery, ReservationUpdate

TOPIC = "reservation-events"
PRODUCER = "reservation-service"
MAX_SCHEDULE_DAYS = 92


@dataclass(frozen=True)
class BookingSettings:
    max_duration: timedelta
    horizon: timedelta
    rooms: RoomDirectory
    users: UserDirectory
    max_future_bookings: int
    max_hours_per_week: int
    max_attendees: int
    max_series_occurrences: int

    @property
    def default_policy(self) -> BookingPolicy:
        """For rooms announced before rooms had a policy: MAX_BOOKING_MINUTES and BOOKING_HORIZON_DAYS."""
        return BookingPolicy(
            open_hours=None,
            min_minutes=0,
            max_minutes=int(self.max_duration.total_seconds() // 60),
            horizon_days=self.horizon.days,
        )


class BookingConflict(Conflict):
    type = "/problems/booking-conflict"
    title = "Booking Conflict"

    def __init__(self, conflicts: list[Reservation], blackouts: list[Blackout] = ()):
        extra = {}
        if conflicts or not blackouts:
            extra["conflicts"] = [
                {"reservation_id": r.id, "start_time": r.start_time.isoformat(), "end_time": r.end_time.isoformat()}
                for r in conflicts
            ]
        if blackouts:
            extra["blackouts"] = [
                {
                    "blackout_id": b.id,
                    "start_time": b.start_time.isoformat(),
                    "end_time": b.end_time.isoformat(),
                    "reason": b.reason,
                }
                for b in blackouts
            ]
        detail = (
            "The room is already booked for part of this time." if conflicts else "The room is blacked out for part of this time."
        )
        super().__init__(detail, **extra)


class QuotaExceeded(Conflict):
    """A fair-use limit (MAX_FUTURE_BOOKINGS or MAX_HOURS_PER_WEEK) would be passed."""

    type = "/problems/quota-exceeded"
    title = "Fair-Use Limit Reached"


def publish(event_type: str, reservation: Reservation) -> None:
    record_event(TOPIC, reservation.id, event_type, reservation.to_dict(), PRODUCER)


def check_times(start: datetime, end: datetime, now: datetime) -> None:
    """A window of a booking or blackout: end after start, start not in the past (422 naming the fields)."""
    errors = []
    if end <= start:
        errors.append({"field": "end_time", "message": "Must be after start_time."})
    if start < now:
        errors.append({"field": "start_time", "message": "Must not be in the past."})
    if errors:
        raise ValidationFailed(errors)


def _check_policy(room: RoomInfo, start: datetime, end: datetime, settings: BookingSettings, now: datetime) -> None:
    """The room's own rules (open hours in its zone, shortest, longest, how far ahead)."""
    policy = BookingPolicy.of_room(room.booking_policy, settings.default_policy)
    errors = policy_violations(room.name, room.timezone, policy, start, end, now)
    if errors:
        raise ValidationFailed(errors, detail=" ".join(e["message"] for e in errors))


def _check_room(room: RoomInfo | None, attendees: int, settings: BookingSettings) -> RoomInfo:
    if room is None or room.deleted:
        raise ValidationFailed.single("room_id", "No such room.")
    if not room.is_active:
        raise ValidationFailed.single("room_id", "This room is not open for booking.")
    if attendees > settings.max_attendees:
        raise ValidationFailed.single("attendees", f"At most {settings.max_attendees} attendees; {attendees} were given.")
    if attendees > room.capacity:
        raise ValidationFailed.single("attendees", f"The room holds {room.capacity} people; {attendees} attendees were given.")
    return room


def find_blackouts(room_id: int, start: datetime, end: datetime) -> list[Blackout]:
    """The blackouts of this room (or of every room) overlapping [start, end)."""
    stmt = (
        select(Blackout)
        .where(
            or_(Blackout.room_id == room_id, Blackout.room_id.is_(None)),
            Blackout.during.op("&&")(func.tstzrange(start, end, "[)")),
        )
        .order_by(Blackout.start_time, Blackout.id)
    )
    return list(db.session.execute(stmt).scalars())


def _check_free(room_id: int, start: datetime, end: datetime, exclude_id: int | None) -> None:
    """No blackout and no other confirmed booking in the way (call with locks.lock_for_booking held)."""
    blackouts = find_blackouts(room_id, start, end)
    clashes = find_conflicts(room_id, start, end, exclude_id)
    if blackouts or clashes:
        raise BookingConflict(clashes, blackouts)


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


@dataclass(frozen=True)
class Candidate:
    """A booking being checked: its room and time, whose fair-use limits apply (`quota_user`; None for an
    admin's booking), the booking it would replace (`exclude_id`: a move), the room's rules and the time."""

    room_id: int
    start: datetime
    end: datetime
    exclude_id: int | None
    quota_user: int | None
    room: RoomInfo
    settings: BookingSettings
    now: datetime


def _judge_quotas(usage, weeks, candidate: Candidate) -> None:
    """Raise QuotaExceeded if the booking would pass a limit, given `usage` (a row of `_booking_check`)."""
    start, end, settings, now = candidate.start, candidate.end, candidate.settings, candidate.now
    upcoming = getattr(usage, "upcoming", None)
    if upcoming is not None and upcoming + 1 > settings.max_future_bookings:
        # The check counted no further than the limit; the refusal says how many there are.
        upcoming = _count_upcoming(candidate.quota_user, now, candidate.exclude_id)
        raise QuotaExceeded(
            f"You already have {upcoming} upcoming bookings; at most {settings.max_future_bookings} are allowed "
            "(MAX_FUTURE_BOOKINGS).",
            limit="MAX_FUTURE_BOOKINGS",
            maximum=settings.max_future_bookings,
            current=upcoming,
        )
    for index, (week, week_start, week_end) in enumerate(weeks):
        booked = float(getattr(usage, f"week_{index}"))
        adding = (min(end, week_end) - max(start, week_start)).total_seconds()
        if booked + adding > settings.max_hours_per_week * 3600:
            raise QuotaExceeded(
                f"You have {plain_number(_hours(booked))} hours booked in week {week} ({candidate.room.timezone}); "
                f"this booking adds {plain_number(_hours(adding))} and at most {settings.max_hours_per_week} are allowed (MAX_HOURS_PER_WEEK).",
                limit="MAX_HOURS_PER_WEEK",
                maximum=settings.max_hours_per_week,
                current=_hours(booked),
                requested=_hours(adding),
                week=week,
            )


def _count_upcoming(user_id: int, now: datetime, exclude_id: int | None) -> int:
    """The user's confirmed bookings that have not started (all of them: only a refusal asks)."""
    stmt = select(func.count()).where(
        Reservation.user_id == user_id, Reservation.status == "confirmed", Reservation.start_time > now
    )
    if exclude_id is not None:
        stmt = stmt.where(Reservation.id != exclude_id)
    return db.session.execute(stmt).scalar_one()


# A user's confirmed bookings, read through the (user_id, during) GiST index of confirmed bookings
# (0009_user_quota_index): the quota columns cost what the limits allow, not what the user has ever booked.
_MINE = "user_id = :user_id AND status = 'confirmed'"


@functools.cache
def _booking_check_sql(free: bool, excluding: bool, quota: bool, upcoming: bool, weeks: int) -> str:
    """The SELECT that checks one shape of booking. Its columns:
    - free: `blacked_out`, `taken` (is a blackout or another confirmed booking in the way);
    - quota and upcoming: `upcoming`, the user's confirmed bookings not yet started, counted up to
      :upcoming_cap (MAX_FUTURE_BOOKINGS: enough to tell whether one more passes it);
    - quota: `week_0` .. `week_{weeks-1}`, the seconds the user has booked in each ISO week the booking touches."""
    not_this = " AND id <> :exclude_id" if excluding else ""
    columns = []
    if free:
        columns += [
            "EXISTS (SELECT 1 FROM blackouts WHERE (room_id = :room_id OR room_id IS NULL)"
            " AND during && tstzrange(:start, :end, '[)')) AS blacked_out",
            "EXISTS (SELECT 1 FROM reservations WHERE room_id = :room_id AND status = 'confirmed'"
            f" AND during && tstzrange(:start, :end, '[)'){not_this}) AS taken",
        ]
    if quota and upcoming:
        columns.append(
            f"(SELECT count(*) FROM (SELECT 1 FROM reservations WHERE {_MINE}{not_this}"
            " AND during && tstzrange(:now, NULL) AND start_time > :now LIMIT :upcoming_cap) AS capped) AS upcoming"
        )
    for index in range(weeks if quota else 0):
        week_start, week_end = f":week_start_{index}", f":week_end_{index}"
        columns.append(
            "(SELECT coalesce(sum(extract(epoch FROM"
            f" least(end_time, {week_end}) - greatest(start_time, {week_start}))), 0)"
            f" FROM reservations WHERE {_MINE}{not_this} AND during && tstzrange({week_start}, {week_end}, '[)'))"
            f" AS week_{index}"
        )
    return "SELECT " + ", ".join(columns)


_PARAMETER_TYPES = {
    "room_id": BigInteger,
    "start": DateTime(timezone=True),
    "end": DateTime(timezone=True),
    "exclude_id": BigInteger,
    "user_id": BigInteger,
    "now": DateTime(timezone=True),
    "upcoming_cap": BigInteger,
    "owner_id": BigInteger,
    "title": Reservation.__table__.c.title.type,
    "description": Reservation.__table__.c.description.type,
    "attendees": Reservation.__table__.c.attendees.type,
}


def _typed(sql: str, weeks: int = 0) -> TextClause:
    """`sql` as a text statement, each parameter it names bound with its type (plain text statements cost
    SQLAlchemy no expression building, compiling or cache-key work per request: build them once)."""
    types = dict(_PARAMETER_TYPES)
    for index in range(weeks):
        types[f"week_start_{index}"] = types[f"week_end_{index}"] = DateTime(timezone=True)
    return text(sql).bindparams(*(bindparam(name, type_=t) for name, t in types.items() if f":{name}" in sql))


@functools.cache
def _booking_check(free: bool, excluding: bool, quota: bool, upcoming: bool, weeks: int) -> TextClause:
    """`_booking_check_sql` as a statement, built once per shape."""
    return _typed(_booking_check_sql(free, excluding, quota, upcoming, weeks), weeks if quota else 0)


@functools.cache
def _check_and_insert(quota: bool, upcoming: bool, weeks: int) -> TextClause:
    """A new booking's check and INSERT in one statement (run after the locks, in a later statement): the
    check's columns, and the booking's shown columns when nothing was in the way (all NULL when something
    was). The quota columns are judged afterwards, in Python; a refusal rolls the INSERT back."""
    check = _booking_check_sql(True, False, quota, upcoming, weeks)
    shown = ", ".join(column.name for column in _SHOWN_COLUMNS)
    sql = (
        f"WITH c AS MATERIALIZED ({check}),"
        " ins AS (INSERT INTO reservations (room_id, user_id, title, description, start_time, end_time, attendees, status)"
        " SELECT :room_id, :owner_id, :title, :description, :start, :end, :attendees, 'confirmed'"
        f" FROM c WHERE NOT c.blacked_out AND NOT c.taken RETURNING {shown})"
        " SELECT * FROM c LEFT JOIN ins ON true"
    )
    return _typed(sql, weeks if quota else 0)


def _check_values(c: Candidate) -> tuple[dict, list]:
    """The values of `_booking_check`'s parameters for this booking, and the ISO weeks of its week_N columns."""
    weeks = iso_weeks(c.room.timezone, c.start, c.end) if c.quota_user is not None else []
    values = {
        "room_id": c.room_id,
        "start": c.start,
        "end": c.end,
        "exclude_id": c.exclude_id,
        "user_id": c.quota_user,
        "now": c.now,
        "upcoming_cap": c.settings.max_future_bookings,
    }
    for index, (_week, week_start, week_end) in enumerate(weeks):
        values[f"week_start_{index}"], values[f"week_end_{index}"] = week_start, week_end
    return values, weeks


def _run_booking_check(free: bool, c: Candidate):
    """Run `_booking_check` for this booking; returns its row and the ISO weeks its week_N columns are."""
    values, weeks = _check_values(c)
    statement = _booking_check(free, c.exclude_id is not None, c.quota_user is not None, c.start > c.now, len(weeks))
    return db.session.execute(statement, values).one(), weeks  # values the statement does not name are ignored


def _check_quotas(candidate: Candidate) -> None:
    """Fair use of `candidate.quota_user` (call with the user's lock held, so two requests cannot both take the
    last unit)."""
    row, weeks = _run_booking_check(False, candidate)
    _judge_quotas(row, weeks, candidate)


def _check_free_and_quotas(c: Candidate) -> None:
    """`_check_free`, then (for `quota_user`) `_check_quotas`, in one round trip when nothing is in the way
    (call with locks.lock_for_booking held, in a later statement than the locks). The same rules and
    answers as those two: they run only to describe a refusal."""
    row, weeks = _run_booking_check(True, c)
    if row.blacked_out or row.taken:
        _check_free(c.room_id, c.start, c.end, c.exclude_id)  # the 409 with the blackouts and bookings in the way
    if c.quota_user is not None:
        _judge_quotas(row, weeks, c)


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


# Every column a reservation's JSON shows (`reservation_dict`): all but the computed `during`.
_SHOWN_COLUMNS = tuple(column for column in Reservation.__table__.c if column.name != "during")


def _clash_raises(room_id: int, start: datetime, end: datetime, exclude_id: int | None) -> dict:
    """A clash caught by the exclusion constraint (a race lost at the database) is the same 409 as one found before."""
    return {"no_overlapping_reservations": lambda: BookingConflict(find_conflicts(room_id, start, end, exclude_id))}


def _flush_or_conflict(room_id: int, start: datetime, end: datetime, exclude_id: int | None) -> None:
    """Flush; a clash caught by the exclusion constraint is the same 409."""
    flush_or_raise(_clash_raises(room_id, start, end, exclude_id))


def _with_suggestions(
    conflict: BookingConflict, room: RoomInfo, start: datetime, end: datetime, attendees: int, settings, now: datetime
) -> BookingConflict:
    """The 409 with up to three bookings that would succeed now (see availability.suggestions)."""
    conflict.extra["suggestions"] = availability.suggestions(room, start, end, attendees, settings.default_policy, now)
    db.session.rollback()
    return conflict


_ROOM_AND_OWNER = (
    "SELECT r.room_id, r.name, r.capacity, r.location, r.is_active, r.deleted, r.timezone, r.booking_policy,"
    " r.equipment, EXISTS (SELECT 1 FROM user_replicas WHERE user_id = :owner_id) AS owner_known, {locks}"
    " FROM (SELECT 1) AS one LEFT JOIN room_replicas AS r ON r.room_id = :room_id"
)


@functools.cache
def _room_and_owner_locking(calls: str) -> TextClause:
    return _typed(_ROOM_AND_OWNER.format(locks=calls))


def _room_and_owner_locked(room_id: int, owner_id: int, quota_user: int | None) -> tuple[RoomInfo | None, bool]:
    """What the read models know of the room (None: nothing yet) and whether they know the owner, and the
    booking's locks (`locks.lock_for_booking`), in one round trip. These reads need no lock: blackouts,
    conflicts and usage are read in a later statement."""
    calls, parameters = locks.booking_lock_calls(room_id, quota_user)
    row = db.session.execute(_room_and_owner_locking(calls), {"room_id": room_id, "owner_id": owner_id, **parameters}).one()
    return (_room_info(row) if row.room_id is not None else None), row.owner_known


def create_reservation(
    principal: Principal, request: ReservationCreate, bearer: str, settings: BookingSettings, on_created=None
) -> dict:
    """Five round trips when the read models know the room and the owner: BEGIN (psycopg sends it on its own);
    the room, the owner and the locks; the check and the INSERT; the outbox row; COMMIT."""
    start, end = request.start_time, request.end_time
    now = utcnow()
    check_times(start, end, now)
    quota_user = None if principal.is_admin else principal.user_id
    known_room, owner_known = _room_and_owner_locked(request.room_id, principal.user_id, quota_user)
    locked = known_room is not None and owner_known
    if not locked:
        db.session.rollback()  # no lock is held across a call to a peer
    room = known_room or settings.rooms.lookup(request.room_id, bearer)  # not known here: room-service tells
    room = _check_room(room, len(request.attendees), settings)
    _check_policy(room, start, end, settings, now)
    if not owner_known:
        settings.users.lookup(principal.user_id, bearer)  # learn the owner's e-mail for notifications
    if not locked:
        # Network calls are done; now one transaction, serialised against blackouts and the user's other bookings.
        locks.lock_for_booking(request.room_id, quota_user)
    candidate = Candidate(request.room_id, start, end, None, quota_user, room, settings, now)
    values, weeks = _check_values(candidate)
    values.update(owner_id=principal.user_id, title=request.title, description=request.description, attendees=request.attendees)
    statement = _check_and_insert(quota_user is not None, start > now, len(weeks))

    def check_and_insert() -> Row:
        row = db.session.execute(statement, values).one()
        if row.id is None:
            _check_free(request.room_id, start, end, None)  # something was in the way: the 409 says what
            raise LookAgain  # it went in the meantime
        return row

    def still_taken() -> NoReturn:
        raise BookingConflict(find_conflicts(request.room_id, start, end))

    try:
        # A clash the exclusion constraint catches (a race lost at the database) is the same 409. Two bookings of
        # the same time inserted at the same moment, each waiting on the other's row under that constraint, are a
        # deadlock PostgreSQL breaks by aborting one: it looks again under fresh locks and finds the other (409).
        with violations_raise(_clash_raises(request.room_id, start, end, None)):
            row = retried(
                check_and_insert,
                attempts=3,
                exhausted=still_taken,
                before_retry=lambda: locks.lock_for_booking(request.room_id, quota_user),
            )
        if quota_user is not None:
            # (a refusal's exact count leaves out the row just inserted, which the check's columns did not see)
            _judge_quotas(row, weeks, replace(candidate, exclude_id=row.id))
    except BookingConflict as conflict:
        db.session.rollback()  # release the locks before looking around
        raise _with_suggestions(conflict, room, start, end, len(request.attendees), settings, now) from None
    except QuotaExceeded:
        db.session.rollback()  # the INSERT goes with it
        raise
    body = reservation_dict(row)
    record_event(TOPIC, row.id, "reservation.created", body, PRODUCER)
    if on_created:
        on_created(body)
    db.session.commit()
    return body


def get_reservation(reservation_id: int, principal: Principal, *, for_update: bool = False) -> Reservation:
    """Load a reservation its owner or an admin may see (403 for anyone else)."""
    # Locking re-reads the row: what an earlier read in this transaction left in the session may be stale.
    reservation = db.session.get(Reservation, reservation_id, with_for_update=for_update, populate_existing=for_update)
    if reservation is None:
        raise NotFound(f"Reservation {reservation_id} does not exist.")
    if not principal.may_act_for(reservation.user_id):
        raise Forbidden("You may only access your own reservations.")
    return reservation


def update_reservation(
    reservation_id: int,
    principal: Principal,
    changes: ReservationUpdate,
    bearer: str,
    settings: BookingSettings,
    *,
    if_match: str | None = None,
) -> Reservation:
    sent = changes.model_fields_set
    current = get_reservation(reservation_id, principal)
    require_match(if_match, etag_for(current.to_dict()))  # early answer; the binding check is under the lock below
    if current.status != "confirmed":
        raise Conflict(f"A {current.status} reservation cannot be changed.")
    room_id = changes.room_id if "room_id" in sent else current.room_id
    start = changes.start_time if "start_time" in sent else current.start_time
    end = changes.end_time if "end_time" in sent else current.end_time
    attendees = changes.attendees if "attendees" in sent else list(current.attendees)
    moved = (room_id, start, end) != (current.room_id, current.start_time, current.end_time)
    now = utcnow()
    if moved:
        check_times(start, end, now)
    room = None
    if moved or len(attendees) > len(current.attendees):
        room = _check_room(settings.rooms.lookup(room_id, bearer), len(attendees), settings)
    if moved:
        _check_policy(room, start, end, settings, now)
    # Network calls are done; now one short transaction. A move takes the booking locks before the row lock.
    quota_user = None if principal.is_admin else current.user_id
    if moved:
        locks.lock_for_booking(room_id, quota_user)
    reservation = get_reservation(reservation_id, principal, for_update=True)
    require_match(if_match, etag_for(reservation.to_dict()))
    if reservation.status != "confirmed":
        raise Conflict(f"A {reservation.status} reservation cannot be changed.")
    if (reservation.room_id, reservation.start_time, reservation.end_time) != (
        current.room_id,
        current.start_time,
        current.end_time,
    ):
        raise Conflict("The reservation was changed meanwhile; read it again and retry.")
    new_values = {"room_id": room_id, "start_time": start, "end_time": end, "attendees": attendees}
    for name in ("title", "description"):
        if name in sent:
            new_values[name] = getattr(changes, name)
    changed = {name: value for name, value in new_values.items() if getattr(reservation, name) != value}
    if not changed:
        db.session.commit()
        return reservation
    if moved:
        _check_free_and_quotas(Candidate(room_id, start, end, reservation.id, quota_user, room, settings, now))
    for name, value in changed.items():
        setattr(reservation, name, value)
    reservation.updated_at = utcnow()
    reservation.sequence += 1
    _flush_or_conflict(room_id, start, end, reservation.id)
    db.session.refresh(reservation)
    publish("reservation.updated", reservation)
    db.session.commit()
    return reservation


def cancel_reservation(reservation_id: int, principal: Principal, *, if_match: str | None = None) -> None:
    """Cancel (idempotent: cancelling a cancelled, or released, reservation changes nothing)."""
    reservation = get_reservation(reservation_id, principal, for_update=True)
    require_match(if_match, etag_for(reservation.to_dict()))
    if reservation.status != "confirmed":
        db.session.commit()
        return
    if reservation.end_time <= utcnow():
        raise Conflict("This reservation is already over; it stays in the history.")
    _cancel(reservation)
    db.session.commit()


def _cancel(reservation: Reservation, **why) -> None:
    """Cancel in the caller's transaction; `why` (e.g. reason="blackout") is added to the event's data."""
    reservation.status = "cancelled"
    reservation.updated_at = utcnow()
    reservation.sequence += 1
    db.session.flush()
    record_event(TOPIC, reservation.id, "reservation.cancelled", {**reservation.to_dict(), **why}, PRODUCER)


def cancel_reservations_in_blackout(blackout: Blackout) -> int:
    """Cancel the confirmed reservations overlapping a new blackout (call with locks.lock_for_blackout held)."""
    stmt = select(Reservation).where(
        Reservation.status == "confirmed",
        Reservation.during.op("&&")(func.tstzrange(blackout.start_time, blackout.end_time, "[)")),
    )
    if blackout.room_id is not None:
        stmt = stmt.where(Reservation.room_id == blackout.room_id)
    reservations = list(db.session.execute(stmt.order_by(Reservation.id).with_for_update()).scalars())
    for reservation in reservations:
        _cancel(reservation, reason="blackout", blackout_id=blackout.id, blackout_reason=blackout.reason)
    return len(reservations)


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


def list_reservations(principal: Principal, query: ReservationListQuery) -> dict:
    """A page of the reservations `principal` may list (their own; an admin's: everyone's), earliest first."""
    user_id = query.user_id
    if not principal.is_admin:
        if user_id is not None and user_id != principal.user_id:
            raise Forbidden("Only administrators may list other users' reservations.")
        user_id = principal.user_id
    values = {"user_id": user_id, "room_id": query.room_id, "status": query.status, "from_": query.from_, "to": query.to}
    return _LIST.page(db.session, query, values, reservation_dict, scalars=False)


_C = Reservation.__table__.c
# The reservation list: plain rows of the shown columns (not `during`, the computed range the constraints and
# indexes use), Core columns, so no ORM compile or loading step; one statement per combination of filters.
_LIST = FilteredList(
    lambda: select(*_SHOWN_COLUMNS).order_by(_C.start_time, _C.id),
    user_id=lambda: _C.user_id == bindparam("user_id"),
    room_id=lambda: _C.room_id == bindparam("room_id"),
    status=lambda: _C.status == bindparam("status"),
    from_=lambda: _C.end_time > bindparam("from_"),
    to=lambda: _C.start_time < bindparam("to"),
)


def room_schedule(
    principal: Principal, room_id: int, start: datetime | None, end: datetime | None, bearer: str, settings: BookingSettings
) -> list[dict]:
    """The room's confirmed reservations in the window, earliest first, as `principal` may see them:
    other people's show times and title only (no description or attendees), unless they are an admin."""
    start = start if start else utcnow()
    try:
        end = end if end else start + timedelta(days=7)
    except OverflowError:
        raise ValidationFailed.single("from", "Out of range.") from None
    if end <= start:
        raise ValidationFailed.single("to", "Must be after from.")
    if end - start > timedelta(days=MAX_SCHEDULE_DAYS):
        raise ValidationFailed.single("to", f"The window is at most {MAX_SCHEDULE_DAYS} days.")
    # Plain rows from statements built once: no ORM objects, no expression building per request. One round
    # trip tells whether the room is known here (and deleted) and brings its bookings.
    window = {"room_id": room_id, "start": start, "end": end}
    rows = db.session.execute(_SCHEDULE_OF_KNOWN_ROOM, window).all()
    if not rows:  # not known here yet: the directory asks room-service
        room = settings.rooms.lookup(room_id, bearer)
        if room is None or room.deleted:
            raise NotFound(f"Room {room_id} does not exist.")
        rows = db.session.execute(_SCHEDULE, window).all()
    elif rows[0].room_deleted:
        raise NotFound(f"Room {room_id} does not exist.")
    return [as_seen_by(principal, row) for row in rows if row.id is not None]


# `find_conflicts(room_id, start, end)` as plain rows, and whether this service knows a room (deleted or not).
# Core columns only (no ORM attribute): the statements skip the ORM's compile and loading steps.
_BOOKINGS = Reservation.__table__.c
_SCHEDULE = (
    select(*_SHOWN_COLUMNS)
    .where(
        _BOOKINGS.room_id == bindparam("room_id"),
        _BOOKINGS.status == "confirmed",
        _BOOKINGS.during.op("&&")(func.tstzrange(bindparam("start"), bindparam("end"), "[)")),
    )
    .order_by(_BOOKINGS.start_time)
)
# The same bookings beside the room's `deleted` flag: no row at all when the room is not known here, one row
# with null booking columns when it has none in the window.
_KNOWN_ROOM = (
    select(RoomReplica.__table__.c.deleted.label("room_deleted"))
    .where(RoomReplica.__table__.c.room_id == bindparam("room_id"))
    .subquery("room")
)
_BOOKED = _SCHEDULE.subquery("booked").lateral()
_SCHEDULE_OF_KNOWN_ROOM = (
    select(_KNOWN_ROOM.c.room_deleted, *_BOOKED.c)
    .select_from(_KNOWN_ROOM.outerjoin(_BOOKED, true()))
    .order_by(_BOOKED.c.start_time)
)


def as_seen_by(principal: Principal, reservation) -> dict:
    """`reservation`: a Reservation, or a row of its table's columns."""
    body = reservation_dict(reservation)
    if not principal.may_act_for(reservation.user_id):
        body.update(description=None, attendees=[])
    return body
