"""The waitlist: people waiting for a room and window that is taken. No Flask here.

When the window frees up (a cancellation, a release, a move or a shortened booking, a deleted
blackout), the worker books it for the earliest waiting entry whose whole window is free, with every
booking rule (the room's policy, the owner's quotas, blackouts) and under the exclusion constraint;
the booking's `reservation.created` event (with `waitlist_entry_id`) mails the owner. An entry the
rules now refuse stays waiting and the next one is tried. Entries whose start passes expire.

The pass runs as an exclusive job (one replica at a time), entries in the order they joined, each in
its own transaction, so first come is first served however many workers run.
"""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, select, update

from servicekit.auth import Principal
from servicekit.db import db, utcnow
from servicekit.events import record_event
from servicekit.pagination import FilteredList
from servicekit.problems import Conflict, NotFound, ValidationFailed

from . import locks, services
from .availability import blacked_out_in, booked_in
from .directory import RoomInfo, _room_info
from .models import Reservation, RoomReplica, UserReplica, WaitlistEntry
from .schemas import WaitlistCreate, WaitlistEntryOut, WaitlistListQuery

log = logging.getLogger(__name__)


class SlotIsFree(Conflict):
    type = "/problems/slot-free"
    title = "Slot Is Free"


def join(principal: Principal, request: WaitlistCreate, bearer: str, settings: services.BookingSettings) -> WaitlistEntry:
    """Wait for a taken window (409 SlotIsFree, with the booking it would be, when nothing is in the way)."""
    start, end = request.start_time, request.end_time
    now = utcnow()
    services.check_times(start, end, now)
    room = services._check_room(settings.rooms.lookup(request.room_id, bearer), 0, settings)
    services._check_policy(room, start, end, settings, now)
    if not services.find_conflicts(request.room_id, start, end) and not services.find_blackouts(request.room_id, start, end):
        raise SlotIsFree(
            "The room is free for this whole window: book it (POST /api/reservations) instead of waiting.",
            booking={
                "room_id": request.room_id,
                "title": request.title,
                "start_time": start.isoformat(),
                "end_time": end.isoformat(),
            },
        )
    already = db.session.execute(
        select(WaitlistEntry.id).where(
            WaitlistEntry.user_id == principal.user_id,
            WaitlistEntry.room_id == request.room_id,
            WaitlistEntry.start_time == start,
            WaitlistEntry.end_time == end,
            WaitlistEntry.status == "waiting",
        )
    ).scalar()
    if already is not None:
        raise Conflict(f"You are already waiting for this room and window (entry {already}).", entry_id=already)
    entry = WaitlistEntry(
        user_id=principal.user_id, room_id=request.room_id, title=request.title, start_time=start, end_time=end, status="waiting"
    )
    db.session.add(entry)
    db.session.flush()
    db.session.refresh(entry)
    db.session.commit()
    return entry


def entry_body(entry: WaitlistEntry) -> dict:
    return WaitlistEntryOut.model_validate(entry, from_attributes=True).model_dump(mode="json")


def list_entries(principal: Principal, query: WaitlistListQuery) -> dict:
    """A page of the caller's own entries, latest first."""
    return _OWN_ENTRIES.page(db.session, query, {"user_id": principal.user_id, "status": query.status}, entry_body)


_OWN_ENTRIES = FilteredList(
    lambda: select(WaitlistEntry).order_by(WaitlistEntry.id.desc()),
    user_id=lambda: WaitlistEntry.user_id == bindparam("user_id"),  # always given: only the caller's own
    status=lambda: WaitlistEntry.status == bindparam("status"),
)


def leave(entry_id: int, principal: Principal) -> None:
    """Remove one of your entries (anyone else's is 404: entries are private); a booking made from it stays."""
    entry = db.session.get(WaitlistEntry, entry_id, with_for_update=True)
    if entry is None or entry.user_id != principal.user_id:
        raise NotFound(f"Waitlist entry {entry_id} does not exist.")
    db.session.delete(entry)
    db.session.commit()


def expire_passed() -> int:
    """Entries whose start has passed expire; returns how many."""
    now = utcnow()
    result = db.session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.status == "waiting", WaitlistEntry.start_time <= now)
        .values(status="expired", updated_at=now)
    )
    db.session.commit()
    return result.rowcount or 0


def expire_for_room(room_id: int) -> None:
    """The room is gone (`room.deleted`): its waiting entries can never be booked, so they expire now rather
    than when their start passes (in the caller's transaction)."""
    db.session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.room_id == room_id, WaitlistEntry.status == "waiting")
        .values(status="expired", updated_at=utcnow())
    )


def book_freed_slots(settings: services.BookingSettings) -> list[int]:
    """Try every waiting entry whose window is free now, in the order they joined; returns the entry ids booked."""
    now = utcnow()
    # Only entries that can be booked now: a free window, a room open for booking, an active owner.
    candidates = list(
        db.session.execute(
            select(WaitlistEntry.id)
            .join(RoomReplica, RoomReplica.room_id == WaitlistEntry.room_id)
            .join(UserReplica, UserReplica.user_id == WaitlistEntry.user_id)
            .where(
                WaitlistEntry.status == "waiting",
                WaitlistEntry.start_time > now,
                RoomReplica.is_active.is_(True),
                RoomReplica.deleted.is_(False),
                UserReplica.is_active.is_(True),
                ~booked_in(WaitlistEntry.room_id, WaitlistEntry.start_time, WaitlistEntry.end_time),
                ~blacked_out_in(WaitlistEntry.room_id, WaitlistEntry.start_time, WaitlistEntry.end_time),
            )
            .order_by(WaitlistEntry.id)
        ).scalars()
    )
    db.session.commit()
    booked = []
    for entry_id in candidates:
        try:
            if _book_entry(entry_id, settings):
                booked.append(entry_id)
        except (Conflict, ValidationFailed) as refused:
            db.session.rollback()
            log.info("waitlist entry %s not booked, it keeps waiting: %s", entry_id, refused.detail)
    return booked


def _book_entry(entry_id: int, settings: services.BookingSettings) -> bool:
    """Book one entry in its own transaction, with the same rules and locks as POST /api/reservations."""
    now = utcnow()
    peek = db.session.get(WaitlistEntry, entry_id)
    if peek is None or peek.status != "waiting" or peek.start_time <= now:
        db.session.commit()
        return False
    replica = db.session.get(RoomReplica, peek.room_id)
    owner = db.session.get(UserReplica, peek.user_id)
    if replica is None or owner is None or not owner.is_active:
        db.session.commit()
        return False
    room: RoomInfo = services._check_room(_room_info(replica), 0, settings)
    services._check_policy(room, peek.start_time, peek.end_time, settings, now)
    # The same order as a booking request (locks.py), then the entry's row.
    locks.lock_for_booking(peek.room_id, peek.user_id)
    entry = db.session.get(WaitlistEntry, entry_id, with_for_update=True, populate_existing=True)
    if entry is None or entry.status != "waiting":
        db.session.commit()
        return False
    # The booking path's own check: blackouts, clashes and the owner's quotas in one round trip.
    services._check_free_and_quotas(
        services.Candidate(entry.room_id, entry.start_time, entry.end_time, None, entry.user_id, room, settings, now)
    )
    reservation = Reservation(
        room_id=entry.room_id,
        user_id=entry.user_id,
        title=entry.title,
        start_time=entry.start_time,
        end_time=entry.end_time,
        attendees=[],
        status="confirmed",
    )
    db.session.add(reservation)
    services._flush_or_conflict(entry.room_id, entry.start_time, entry.end_time, None)
    db.session.refresh(reservation)
    entry.status, entry.reservation_id, entry.updated_at = "booked", reservation.id, now
    record_event(
        services.TOPIC,
        reservation.id,
        "reservation.created",
        {**reservation.to_dict(), "waitlist_entry_id": entry.id},
        services.PRODUCER,
    )
    db.session.commit()
    return True
