"""Room rules. No Flask here."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import Select, String, any_, bindparam, case, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from servicekit.conditional import etag_for, require_match
from servicekit.db import db, flush_or_raise, like_substring, utcnow
from servicekit.events import record_event
from servicekit.pagination import FilteredList
from servicekit.problems import Conflict, NotFound, ValidationFailed

from .models import Equipment, Room, room_equipment
from .schemas import BookingPolicy, BookingPolicyUpdate, RoomCreate, RoomListQuery, RoomUpdate

TOPIC = "room-events"
PRODUCER = "room-service"


def publish(event_type: str, room: Room) -> None:
    record_event(TOPIC, room.id, event_type, room.to_dict(), PRODUCER)


def _equipment(names: list[str]) -> list[Equipment]:
    """Equipment rows for `names`, creating the missing ones (concurrency-safe)."""
    if not names:
        return []
    db.session.execute(insert(Equipment).values([{"name": n} for n in names]).on_conflict_do_nothing())
    return list(db.session.execute(select(Equipment).where(Equipment.name.in_(names)).order_by(Equipment.name)).scalars())


def _flush_or_duplicate_name() -> None:
    flush_or_raise({"uq_rooms_name_live": lambda: Conflict("A room with this name already exists.")})


def _checked_policy(policy: BookingPolicy) -> dict:
    if policy.min_minutes > policy.max_minutes:
        raise ValidationFailed.single("booking_policy.max_minutes", f"Must be at least min_minutes ({policy.min_minutes}).")
    return policy.as_stored()


def _merged_policy(current: dict, sent: BookingPolicyUpdate) -> dict:
    """The room's policy with the fields sent in a PUT replaced (the others keep their value)."""
    merged = {**current, **{name: getattr(sent, name) for name in sent.model_fields_set}}
    if "open_hours" in sent.model_fields_set and sent.open_hours is not None:
        merged["open_hours"] = sent.open_hours.as_stored()
    try:
        policy = BookingPolicy.model_validate(merged, strict=False)
    except ValidationError as exc:  # a stored policy from before a rule tightened
        raise ValidationFailed(
            [{"field": "booking_policy." + ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        ) from None
    return _checked_policy(policy)


def create_room(request: RoomCreate, default_timezone: str = "UTC") -> Room:
    room = Room(
        name=request.name,
        capacity=request.capacity,
        location=request.location,
        description=request.description,
        is_active=request.is_active,
        timezone=request.timezone or default_timezone,
        booking_policy=_checked_policy(request.booking_policy),
        equipment=_equipment(request.equipment),
    )
    db.session.add(room)
    _flush_or_duplicate_name()
    db.session.refresh(room)
    publish("room.created", room)
    db.session.commit()
    return room


def get_room(room_id: int, *, for_update: bool = False, include_deleted: bool = False) -> Room:
    room = db.session.get(Room, room_id, with_for_update=for_update, populate_existing=for_update)
    if room is None or (room.deleted_at is not None and not include_deleted):
        raise NotFound(f"Room {room_id} does not exist.")
    return room


def update_room(room_id: int, changes: RoomUpdate, *, if_match: str | None = None) -> Room:
    sent = changes.model_fields_set
    room = get_room(room_id, for_update=True)
    require_match(if_match, etag_for(room.to_dict()))  # row locked: nobody changes it between check and write
    changed = False
    if "booking_policy" in sent:
        policy = _merged_policy(room.booking_policy, changes.booking_policy)
        if policy != room.booking_policy:
            room.booking_policy = policy
            changed = True
    for name in sent - {"equipment", "booking_policy"}:
        if getattr(room, name) != getattr(changes, name):
            setattr(room, name, getattr(changes, name))
            changed = True
    if "equipment" in sent and sorted(e.name for e in room.equipment) != changes.equipment:
        room.equipment = _equipment(changes.equipment)
        changed = True
    if changed:
        room.updated_at = utcnow()
        _flush_or_duplicate_name()
        db.session.refresh(room)
        publish("room.updated", room)
    db.session.commit()
    return room


def delete_room(room_id: int, *, if_match: str | None = None) -> None:
    """Soft delete: the room is gone for every reader, its row stays for history, its name is free again."""
    room = get_room(room_id, for_update=True)
    require_match(if_match, etag_for(room.to_dict()))
    room.deleted_at = utcnow()
    room.updated_at = room.deleted_at
    db.session.flush()
    publish("room.deleted", room)
    db.session.commit()


def list_rooms(query: RoomListQuery) -> dict:
    """One page of rooms that exist, by id, with the filters of `query`."""
    wanted = sorted(set(query.equipment))
    values = {
        "min_capacity": query.min_capacity,
        "is_active": query.is_active,
        "location": like_substring(query.location) if query.location else None,
        "equipment": wanted or None,
        "equipment_count": len(wanted) or None,
    }
    return _ROOMS.page(db.session, query, values, lambda row: Room.to_dict(row, row.equipment_names), scalars=False)


def _rooms_that_exist() -> Select:
    """Every room that exists, by id, as plain rows with the equipment names aggregated in the same query
    (no ORM objects, one round trip); the base of `_ROOMS`."""
    rooms, names = Room.__table__.c, Equipment.__table__.c
    equipment_names = (
        select(func.coalesce(func.array_agg(names.name), literal_column("'{}'::varchar[]")))
        .select_from(Equipment.__table__)
        .join(room_equipment, room_equipment.c.equipment_id == names.id)
        .where(room_equipment.c.room_id == rooms.id)
        .scalar_subquery()
        .label("equipment_names")
    )
    return select(*rooms, equipment_names).where(rooms.deleted_at.is_(None)).order_by(rooms.id)


def _having_all_equipment():
    """Rooms that have every one of :equipment (names; :equipment_count of them)."""
    names = Equipment.__table__.c
    having_all = (
        select(room_equipment.c.room_id)
        .join(Equipment.__table__, names.id == room_equipment.c.equipment_id)
        .where(names.name == any_(bindparam("equipment", type_=ARRAY(String))))  # one array: EXPLAIN can compile it
        .group_by(room_equipment.c.room_id)
        .having(func.count() == bindparam("equipment_count"))
    )
    return Room.__table__.c.id.in_(having_all)


_R = Room.__table__.c  # Core columns: no ORM compile or loading step
_ROOMS = FilteredList(
    _rooms_that_exist,
    min_capacity=lambda: _R.capacity >= bindparam("min_capacity"),
    is_active=lambda: _R.is_active == bindparam("is_active"),
    location=lambda: func.lower(_R.location).like(bindparam("location")),  # a LIKE pattern
    equipment=_having_all_equipment,
)


def room_counts() -> dict[str, int]:
    """Rooms by state, for the rooms_total gauge."""
    state = case((Room.deleted_at.is_not(None), "deleted"), (Room.is_active.is_(True), "active"), else_="inactive")
    counts = {"active": 0, "inactive": 0, "deleted": 0}
    for name, count in db.session.execute(select(state, func.count()).group_by(state)).all():
        counts[name] = count
    return counts
