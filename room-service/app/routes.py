"""HTTP routes: parse, authorise, call the operation, serialise."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from servicekit.auth import require_admin, require_auth
from servicekit.conditional import if_match_header, json_with_etag
from servicekit.validation import parse_body, parse_query

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
def list_rooms():
    """List rooms, with filters.
    ---
    tags: [rooms]
    parameters:
      - {name: page, in: query, schema: {type: integer, minimum: 1, default: 1}}
      - {name: per_page, in: query, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
      - {name: min_capacity, in: query, schema: {type: integer, minimum: 1}}
      - name: equipment
        in: query
        description: repeatable (`?equipment=projector&equipment=whiteboard`); every one must be present; case-insensitive
        style: form
        explode: true
        schema: {type: array, items: {type: string}}
      - {name: location, in: query, description: case-insensitive substring of the location, schema: {type: string}}
      - {name: is_active, in: query, schema: {type: boolean}}
    responses:
      200:
        description: A page of rooms (deleted rooms never appear), by id.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/RoomPage'}
      401: {$ref: '#/components/responses/Unauthorized'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    query = parse_query(RoomListQuery, multi=frozenset({"equipment"}))
    return jsonify(services.list_rooms(query))


@rooms.post("")
@require_admin
def create_room():
    """Create a room (admins).
    ---
    tags: [rooms]
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/RoomCreate'}
    responses:
      201:
        description: The room.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/RoomOut'}
      400: {$ref: '#/components/responses/BadRequest'}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      409: {$ref: '#/components/responses/Conflict'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    room = services.create_room(parse_body(RoomCreate), current_app.config["SERVICE"].default_timezone)
    _refresh_room_gauge()
    return jsonify(room.to_dict()), 201, {"Location": f"/api/rooms/{room.id}"}


@rooms.get("/<int:room_id>")
@require_auth
def get_room(room_id: int):
    """One room, with an `ETag`; `If-None-Match` with the current one → 304.
    ---
    tags: [rooms]
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: integer}}
      - {$ref: '#/components/parameters/IfNoneMatch'}
    responses:
      200:
        description: The room.
        headers:
          ETag: {description: The entity tag of the room (for If-None-Match and If-Match)., schema: {type: string}}
        content:
          application/json:
            schema: {$ref: '#/components/schemas/RoomOut'}
      304: {$ref: '#/components/responses/NotModified'}
      401: {$ref: '#/components/responses/Unauthorized'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    return json_with_etag(services.get_room(room_id).to_dict())


@rooms.put("/<int:room_id>")
@require_admin
def update_room(room_id: int):
    """Change any subset of a room's fields (admins). `is_active: false` closes it for booking.
    With `If-Match`, only if the room still has that ETag (else 412, nothing changed).
    ---
    tags: [rooms]
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: integer}}
      - {$ref: '#/components/parameters/IfMatch'}
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/RoomUpdate'}
    responses:
      200:
        description: The room.
        headers:
          ETag: {description: The new entity tag of the room., schema: {type: string}}
        content:
          application/json:
            schema: {$ref: '#/components/schemas/RoomOut'}
      400: {$ref: '#/components/responses/BadRequest'}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
      409: {$ref: '#/components/responses/Conflict'}
      412: {$ref: '#/components/responses/PreconditionFailed'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    room = services.update_room(room_id, parse_body(RoomUpdate), if_match=if_match_header())
    _refresh_room_gauge()
    return json_with_etag(room.to_dict())


@rooms.delete("/<int:room_id>")
@require_admin
def delete_room(room_id: int):
    """Delete a room (admins): it is gone for every reader and cannot be booked; its future reservations are cancelled.
    With `If-Match`, only if the room still has that ETag (else 412, nothing changed).
    ---
    tags: [rooms]
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: integer}}
      - {$ref: '#/components/parameters/IfMatch'}
    responses:
      204: {description: Deleted.}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
      412: {$ref: '#/components/responses/PreconditionFailed'}
    """
    services.delete_room(room_id, if_match=if_match_header())
    _refresh_room_gauge()
    return "", 204


@internal.get("/<int:room_id>")
@require_auth
def internal_room(room_id: int):
    """For reservation-service (not routed by the gateway): a room including deleted ones, with the caller's token.
    ---
    tags: [internal]
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: integer}}
    responses:
      200:
        description: The room and whether it was deleted.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/InternalRoom'}
      401: {$ref: '#/components/responses/Unauthorized'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    room = services.get_room(room_id, include_deleted=True)
    return jsonify({**room.to_dict(), "deleted": room.deleted_at is not None})
