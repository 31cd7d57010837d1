"""What reservation-service knows of rooms and users: its read models first, REST when they know nothing.

No database transaction is open while a peer is called.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert

from servicekit.db import db
from servicekit.peers import PeerClient, PeerUnavailable
from servicekit.problems import ServiceUnavailable

from .models import RoomReplica, UserReplica


@dataclass(frozen=True)
class RoomInfo:
    room_id: int
    name: str
    capacity: int
    location: str | None
    is_active: bool
    deleted: bool
    timezone: str = "UTC"
    booking_policy: dict | None = None  # null: announced before rooms had policies; the service's defaults apply
    equipment: tuple[str, ...] = ()


def replica_values(room_id: int, room: dict, *, deleted: bool) -> dict:
    """The read-model row for a room as room-service shows it (in an event or over REST)."""
    return {
        "room_id": room_id,
        "name": room["name"],
        "capacity": int(room["capacity"]),
        "location": room.get("location"),
        "is_active": bool(room["is_active"]),
        "deleted": deleted,
        "timezone": room.get("timezone") or "UTC",
        "booking_policy": room.get("booking_policy"),
        "equipment": list(room.get("equipment") or []),
    }


@dataclass(frozen=True)
class UserInfo:
    user_id: int
    email: str
    full_name: str
    is_active: bool


def _room_info(replica: RoomReplica) -> RoomInfo:
    return RoomInfo(
        replica.room_id,
        replica.name,
        replica.capacity,
        replica.location,
        replica.is_active,
        replica.deleted,
        replica.timezone,
        replica.booking_policy,
        tuple(replica.equipment or ()),
    )


def _remember(statement) -> None:
    """Fill the read model with what a peer told, committed at once in a short transaction of its own."""
    with db.engine.begin() as connection:
        connection.execute(statement)


class RoomDirectory:
    def __init__(self, client: PeerClient):
        self.client = client

    def lookup(self, room_id: int, bearer: str) -> RoomInfo | None:
        """The room, or None if it does not exist. 503 when nothing can be decided."""
        replica = db.session.get(RoomReplica, room_id)
        if replica is not None:
            return _room_info(replica)
        db.session.commit()  # end the read before the network call
        try:
            response = self.client.get(f"/internal/rooms/{room_id}", bearer=bearer)
        except PeerUnavailable:
            raise ServiceUnavailable(
                "room-service is unavailable and this room is not known here yet; try again shortly."
            ) from None
        if response.status == 404:
            return None
        if response.status != 200 or not isinstance(response.body, dict):
            raise ServiceUnavailable(f"room-service answered {response.status}; the room cannot be checked now.")
        values = replica_values(room_id, response.body, deleted=bool(response.body.get("deleted", False)))
        # Events stay the authority: a replica they already wrote is not overwritten. Written in a transaction
        # of its own: the request may be a read, whose session does not write (servicekit.db.ServiceSession).
        _remember(insert(RoomReplica).values(**values).on_conflict_do_nothing())
        return RoomInfo(**{**values, "equipment": tuple(values["equipment"])})


class UserDirectory:
    def __init__(self, client: PeerClient):
        self.client = client

    def lookup(self, user_id: int, bearer: str | None = None) -> UserInfo | None:
        """The user from the read model, else from user-service; None if neither can tell."""
        replica = db.session.get(UserReplica, user_id)
        if replica is not None:
            return UserInfo(replica.user_id, replica.email, replica.full_name, replica.is_active)
        db.session.commit()  # end the read before the network call
        if bearer is None:
            return None
        try:
            response = self.client.get(f"/api/users/{user_id}", bearer=bearer)
        except PeerUnavailable:
            return None  # the verified, unrevoked token already vouches for the caller
        if response.status != 200 or not isinstance(response.body, dict):
            return None
        body = response.body
        values = {
            "user_id": user_id,
            "email": body["email"],
            "full_name": body["full_name"],
            "is_active": bool(body["is_active"]),
        }
        _remember(insert(UserReplica).values(**values).on_conflict_do_nothing())
        return UserInfo(**values)
