"""HTTP routes: parse, authorise, call the operation, serialise."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from servicekit.auth import require_admin, require_auth
from servicekit.conditional import if_match_header, json_with_etag
from servicekit.validation import with_body, with_query

from . import services
from .schemas import RoomCreate, RoomListQuery, RoomUpdate

rooms = Blueprint("rooms", __name__, url_prefix="/api/rooms")
internal = Blueprint("internal", __name__, url_prefix="/internal/rooms")


def _refresh_room_gauge() -> None:
    gauge = current_app.extensions["room-service.rooms_gauge"]
    for state, count in services.room_counts().items():
        gauge.labels(state).set(count)


@rooms.get("")
@require_auth
@with_query(RoomListQuery)
def list_rooms(query: RoomListQuery):
    """List rooms, with filters.
    ---
    responses:
      200:
        description: A page of rooms (deleted rooms never appear), by id.
        schema: {$ref: '#/components/schemas/RoomPage'}
    """
    return jsonify(services.list_rooms(query))


@rooms.post("")
@require_admin
@with_body(RoomCreate)
def create_room(body: RoomCreate):
    """Create a room (admins).
    ---
    responses:
      201: {description: The room., schema: {$ref: '#/components/schemas/RoomOut'}}
      409: {$ref: '#/components/responses/Conflict'}
    """
    room = services.create_room(body, current_app.config["SERVICE"].default_timezone)
    _refresh_room_gauge()
    return jsonify(room.to_dict()), 201, {"Location": f"/api/rooms/{room.id}"}


@rooms.get("/<int:room_id>")
@require_auth
def get_room(room_id: int):
    """One room, with an `ETag`; `If-None-Match` with the current one → 304.
    ---
    parameters:
      - {$ref: '#/components/parameters/IfNoneMatch'}
    responses:
      200: {description: The room., schema: {$ref: '#/components/schemas/RoomOut'}}
    """
    return json_with_etag(services.get_room(room_id).to_dict())


@rooms.put("/<int:room_id>")
@require_admin
@with_body(RoomUpdate)
def update_room(room_id: int, body: RoomUpdate):
    """Change any subset of a room's fields (admins). `is_active: false` closes it for booking.
    ---
    parameters:
      - {$ref: '#/components/parameters/IfMatch'}
    responses:
      200: {description: The room., schema: {$ref: '#/components/schemas/RoomOut'}}
      409: {$ref: '#/components/responses/Conflict'}
    """
    room = services.update_room(room_id, body, if_match=if_match_header())
    _refresh_room_gauge()
    return json_with_etag(room.to_dict())


@rooms.delete("/<int:room_id>")
@require_admin
def delete_room(room_id: int):
    """Delete a room (admins): it is gone for every reader and cannot be booked; its future reservations are cancelled.
    ---
    parameters:
      - {$ref: '#/components/parameters/IfMatch'}
    responses:
      204: {description: Deleted.}
    """
    services.delete_room(room_id, if_match=if_match_header())
    _refresh_room_gauge()
    return "", 204


@internal.get("/<int:room_id>")
@require_auth
def internal_room(room_id: int):
    """For reservation-service (not routed by the gateway): a room including deleted ones, with the caller's token.
    ---
    responses:
      200: {description: The room and whether it was deleted., schema: {$ref: '#/components/schemas/InternalRoom'}}
    """
    room = services.get_room(room_id, include_deleted=True)
    return jsonify({**room.to_dict(), "deleted": room.deleted_at is not None})
