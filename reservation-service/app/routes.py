"""HTTP routes: parse, authorise, call the operation, serialise."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from servicekit.auth import bearer_token, current_principal, require_auth
from servicekit.conditional import if_match_header, json_with_etag
from servicekit.db import db
from servicekit.metrics import metrics_of
from servicekit.pagination import paginate
from servicekit.problems import Problem
from servicekit.validation import json_object_body, parse_body, parse_query

from . import idempotency, services
from .schemas import ReservationCreate, ReservationListQuery, ReservationUpdate, ScheduleQuery

reservations = Blueprint("reservations", __name__, url_prefix="/api/reservations")


def _settings() -> services.BookingSettings:
    return current_app.extensions["reservation-service.booking"]


BOOKING_COUNTERS = {
    "reservations_created_total": "Reservations booked",
    "reservation_conflicts_total": "Bookings refused because the room was taken",
}


def register_booking_metrics(app) -> None:
    """Create the booking counters at start-up, so they are exported (at 0) before the first booking."""
    for name, documentation in BOOKING_COUNTERS.items():
        metrics_of(app).counter(name, documentation)


def _count(name: str) -> None:
    metrics_of(current_app).counter(name, BOOKING_COUNTERS[name]).inc()


def _counting_conflicts(operation):
    """Run `operation`, counting booking clashes (for the bookings-and-conflicts dashboard)."""
    try:
        return operation()
    except services.BookingConflict:
        _count("reservation_conflicts_total")
        raise


def _created(body: dict, status: int = 201, replayed: bool = False):
    headers = {"Location": f"/api/reservations/{body['id']}"} if status == 201 else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(body), status, headers


@reservations.post("")
@require_auth
def create():
    """Book a room. Honours `Idempotency-Key`.
    ---
    tags: [reservations]
    parameters:
      - name: Idempotency-Key
        in: header
        required: false
        description: >
          Retrying with the same key and body returns the first answer (with `Idempotent-Replayed: true`)
          and books nothing new; the same key with another body is 422; while the first request with the
          key is still running, 409. Keys are per user and kept for 24 hours.
        schema: {type: string, maxLength: 255}
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/ReservationCreate'}
    responses:
      201:
        description: The reservation (status confirmed).
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ReservationOut'}
      400: {$ref: '#/components/responses/BadRequest'}
      401: {$ref: '#/components/responses/Unauthorized'}
      409:
        description: The room is booked for part of the time (with `conflicts`), or the Idempotency-Key is in flight.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/BookingConflict'}
      422:
        description: >
          Invalid fields: times without offset, end not after start, start in the past, longer than the
          maximum duration or beyond the booking horizon, unknown/inactive room, more attendees than the
          room's capacity, or an Idempotency-Key reused with another body.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    principal = current_principal()
    key = request.headers.get("Idempotency-Key")
    if key is None:
        reservation = _counting_conflicts(
            lambda: services.create_reservation(principal, parse_body(ReservationCreate), bearer_token(), _settings())
        )
        _count("reservations_created_total")
        return _created(reservation.to_dict())
    key = idempotency.validate_key(key)
    digest = idempotency.request_hash(json_object_body())
    replay = idempotency.begin(principal.user_id, key, digest, current_app.extensions["reservation-service.idempotency_ttl"])
    if replay is not None:
        return _created(replay.body, replay.status, replayed=True)
    try:
        reservation = _counting_conflicts(
            lambda: services.create_reservation(
                principal,
                parse_body(ReservationCreate),
                bearer_token(),
                _settings(),
                on_created=lambda r: idempotency.record(principal.user_id, key, 201, r.to_dict()),
            )
        )
    except Problem as problem:
        # A client error is the answer to this key; a server-side failure lets a retry run again.
        if problem.status < 500:
            idempotency.record_alone(principal.user_id, key, problem.status, problem.to_dict())
        else:
            idempotency.release(principal.user_id, key)
        raise
    except Exception:
        idempotency.release(principal.user_id, key)
        raise
    _count("reservations_created_total")
    return _created(reservation.to_dict())


@reservations.get("")
@require_auth
def list_reservations():
    """Your reservations; admins see everyone's (and may filter by `user_id`).
    ---
    tags: [reservations]
    parameters:
      - {name: page, in: query, schema: {type: integer, minimum: 1, default: 1}}
      - {name: per_page, in: query, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
      - {name: room_id, in: query, schema: {type: integer}}
      - {name: status, in: query, schema: {type: string, enum: [confirmed, cancelled]}}
      - {name: from, in: query, description: reservations ending after this time (with offset), schema: {type: string, format: date-time}}
      - {name: to, in: query, description: reservations starting before this time (with offset), schema: {type: string, format: date-time}}
      - {name: user_id, in: query, description: admins only; a user may pass only their own id, schema: {type: integer}}
    responses:
      200:
        description: A page of reservations, earliest first.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ReservationPage'}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    query = parse_query(ReservationListQuery)
    stmt = services.list_reservations(current_principal(), query)
    return jsonify(paginate(db.session, stmt, query, lambda r: r.to_dict()))


@reservations.get("/<int:reservation_id>")
@require_auth
def get(reservation_id: int):
    """One reservation (its owner or an admin), with an `ETag`; `If-None-Match` with the current one → 304.
    ---
    tags: [reservations]
    parameters:
      - {name: reservation_id, in: path, required: true, schema: {type: integer}}
      - {$ref: '#/components/parameters/IfNoneMatch'}
    responses:
      200:
        description: The reservation (cancelled ones stay readable).
        headers:
          ETag: {description: The entity tag of the reservation (for If-None-Match and If-Match)., schema: {type: string}}
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ReservationOut'}
      304: {$ref: '#/components/responses/NotModified'}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    return json_with_etag(services.get_reservation(reservation_id, current_principal()).to_dict())


@reservations.put("/<int:reservation_id>")
@require_auth
def update(reservation_id: int):
    """Change a reservation (any subset of fields); the creation rules apply to the result.
    With `If-Match`, only if the reservation still has that ETag (else 412, nothing changed).
    ---
    tags: [reservations]
    parameters:
      - {name: reservation_id, in: path, required: true, schema: {type: integer}}
      - {$ref: '#/components/parameters/IfMatch'}
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/ReservationUpdate'}
    responses:
      200:
        description: The updated reservation.
        headers:
          ETag: {description: The new entity tag of the reservation., schema: {type: string}}
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ReservationOut'}
      400: {$ref: '#/components/responses/BadRequest'}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: The new time clashes (with `conflicts`; nothing changes), or the reservation is cancelled.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/BookingConflict'}
      412: {$ref: '#/components/responses/PreconditionFailed'}
      422: {$ref: '#/components/responses/ValidationFailed'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    changes = parse_body(ReservationUpdate)
    reservation = _counting_conflicts(
        lambda: services.update_reservation(
            reservation_id, current_principal(), changes, bearer_token(), _settings(), if_match=if_match_header()
        )
    )
    return json_with_etag(reservation.to_dict())


@reservations.delete("/<int:reservation_id>")
@require_auth
def cancel(reservation_id: int):
    """Cancel a reservation: its slot is free again, it stays readable with status cancelled.
    With `If-Match`, only if the reservation still has that ETag (else 412, nothing changed).
    ---
    tags: [reservations]
    parameters:
      - {name: reservation_id, in: path, required: true, schema: {type: integer}}
      - {$ref: '#/components/parameters/IfMatch'}
    responses:
      204: {description: Cancelled (also when it already was).}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: The reservation is already over.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
      412: {$ref: '#/components/responses/PreconditionFailed'}
    """
    services.cancel_reservation(reservation_id, current_principal(), if_match=if_match_header())
    return "", 204


@reservations.get("/room/<int:room_id>")
@require_auth
def schedule(room_id: int):
    """A room's schedule: its confirmed reservations in a window, earliest first.
    ---
    tags: [reservations]
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: integer}}
      - {name: from, in: query, description: 'default: now', schema: {type: string, format: date-time}}
      - {name: to, in: query, description: 'default: seven days after from; at most 92 days after it', schema: {type: string, format: date-time}}
    responses:
      200:
        description: >
          The schedule. Other people's reservations show times and title only
          (description and attendees are blank) unless you are an admin.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Schedule'}
      401: {$ref: '#/components/responses/Unauthorized'}
      404: {$ref: '#/components/responses/NotFound'}
      422: {$ref: '#/components/responses/ValidationFailed'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    query = parse_query(ScheduleQuery)
    principal = current_principal()
    items = services.room_schedule(room_id, query.from_, query.to, bearer_token(), _settings())

    def shown(reservation) -> dict:
        body = reservation.to_dict()
        if reservation.user_id != principal.user_id and not principal.is_admin:
            body.update(description=None, attendees=[])
        return body

    return jsonify(room_id=room_id, items=[shown(r) for r in items])
