"""HTTP routes: parse, authorise, call the operation, serialise."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from servicekit.auth import bearer_token, current_principal, require_admin, require_auth
from servicekit.conditional import if_match_header, json_with_etag
from servicekit.db import db
from servicekit.metrics import metrics_of
from servicekit.pagination import paginate
from servicekit.problems import PROBLEM_JSON
from servicekit.validation import json_object_body, parse_body, parse_query

from . import availability as availability_operations
from . import blackouts as blackout_operations
from . import idempotency, services
from .schemas import (
    AvailabilityQuery,
    AvailableRoom,
    BlackoutCreate,
    BlackoutListQuery,
    BlackoutOut,
    FreeBusyQuery,
    ReservationCreate,
    ReservationListQuery,
    ReservationUpdate,
    ScheduleQuery,
)

reservations = Blueprint("reservations", __name__, url_prefix="/api/reservations")
blackouts = Blueprint("blackouts", __name__, url_prefix="/api/blackouts")
availability = Blueprint("availability", __name__, url_prefix="/api/availability")


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


def create_once(create) -> idempotency.Answer:
    """Run `create(record_answer)` for this POST: once per `Idempotency-Key` and body when the header is sent."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return idempotency.Answer(201, create(None))
    ttl = current_app.extensions["reservation-service.idempotency_ttl"]
    return idempotency.answer_once(current_principal().user_id, key, json_object_body(), ttl, create)


def created_response(answer: idempotency.Answer, location: str):
    """The 201 (or the replayed first answer, a client error staying the problem document it was)."""
    headers = {"Location": location} if answer.status == 201 else {}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    response = jsonify(answer.body)
    if answer.status >= 400:
        response.mimetype = PROBLEM_JSON
    return response, answer.status, headers


@reservations.post("")
@require_auth
def create():
    """Book a room. Honours `Idempotency-Key`.
    ---
    tags: [reservations]
    parameters:
      - {$ref: '#/components/parameters/IdempotencyKey'}
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
        description: >
          The room is booked (`conflicts`) or blacked out (`blackouts`) for part of the time; a fair-use
          limit would be passed (type `/problems/quota-exceeded`, saying which limit, with the numbers);
          or the Idempotency-Key is in flight.
        content:
          application/problem+json:
            schema:
              anyOf:
                - {$ref: '#/components/schemas/BookingConflict'}
                - {$ref: '#/components/schemas/QuotaExceeded'}
                - {$ref: '#/components/schemas/Problem'}
      422:
        description: >
          Invalid fields: times without offset, end not after start, start in the past, more attendees
          than MAX_ATTENDEES or the room's capacity, an unknown/inactive room, an Idempotency-Key reused
          with another body, or a booking against the room's policy (outside its opening hours in its
          time zone, shorter than `min_minutes`, longer than `max_minutes`, beyond `horizon_days`):
          each entry of `errors` then names the field and the `rule`, with a message such as
          "Room 'Aurora' is open 08:00–20:00 Europe/Berlin on Mondays."
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    principal = current_principal()

    def book(record_answer) -> dict:
        on_created = (lambda reservation: record_answer(reservation.to_dict())) if record_answer else None
        return _counting_conflicts(
            lambda: services.create_reservation(
                principal, parse_body(ReservationCreate), bearer_token(), _settings(), on_created=on_created
            )
        ).to_dict()

    answer = create_once(book)
    if not answer.replayed:
        _count("reservations_created_total")
    return created_response(answer, f"/api/reservations/{answer.body.get('id')}")


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
        description: >
          The new time clashes with a booking (`conflicts`) or a blackout (`blackouts`), or passes a fair-use
          limit (nothing changes); or the reservation is cancelled or released, or was changed meanwhile.
        content:
          application/problem+json:
            schema:
              anyOf:
                - {$ref: '#/components/schemas/BookingConflict'}
                - {$ref: '#/components/schemas/QuotaExceeded'}
                - {$ref: '#/components/schemas/Problem'}
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
      204: {description: Cancelled (also when it already was; a released booking stays released).}
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
    items = services.room_schedule(current_principal(), room_id, query.from_, query.to, bearer_token(), _settings())
    return jsonify(room_id=room_id, items=items)


@blackouts.post("")
@require_admin
def create_blackout():
    """Black out a room, or every room (`room_id` null), for a time (admins).
    Confirmed reservations overlapping it are cancelled, each with its `reservation.cancelled`
    event (`reason: blackout`, `blackout_id`) and e-mail; bookings into it are refused (409 with `blackouts`).
    ---
    tags: [blackouts]
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/BlackoutCreate'}
    responses:
      201:
        description: The blackout.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/BlackoutOut'}
      400: {$ref: '#/components/responses/BadRequest'}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      422: {$ref: '#/components/responses/ValidationFailed'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    request_body = parse_body(BlackoutCreate)
    blackout, _ = blackout_operations.create_blackout(current_principal(), request_body, bearer_token(), _settings().rooms)
    body = BlackoutOut.model_validate(blackout, from_attributes=True).model_dump(mode="json")
    return jsonify(body), 201, {"Location": f"/api/blackouts/{blackout.id}"}


@blackouts.get("")
@require_auth
def list_blackouts():
    """Blackouts, earliest first (any user).
    ---
    tags: [blackouts]
    parameters:
      - {name: page, in: query, schema: {type: integer, minimum: 1, default: 1}}
      - {name: per_page, in: query, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
      - {name: room_id, in: query, description: "this room's blackouts and those of every room", schema: {type: integer}}
      - {name: from, in: query, description: blackouts ending after this time (with offset), schema: {type: string, format: date-time}}
      - {name: to, in: query, description: blackouts starting before this time (with offset), schema: {type: string, format: date-time}}
    responses:
      200:
        description: A page of blackouts.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/BlackoutPage'}
      401: {$ref: '#/components/responses/Unauthorized'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    query = parse_query(BlackoutListQuery)
    return jsonify(
        paginate(
            db.session,
            blackout_operations.list_blackouts(query),
            query,
            lambda b: BlackoutOut.model_validate(b, from_attributes=True).model_dump(mode="json"),
        )
    )


@blackouts.delete("/<int:blackout_id>")
@require_admin
def delete_blackout(blackout_id: int):
    """Remove a blackout (admins): the time can be booked again; reservations it cancelled stay cancelled.
    ---
    tags: [blackouts]
    parameters:
      - {name: blackout_id, in: path, required: true, schema: {type: integer}}
    responses:
      204: {description: Removed.}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    blackout_operations.delete_blackout(blackout_id)
    return "", 204


@availability.get("")
@require_auth
def available_rooms():
    """Rooms free for the whole window: active, no confirmed booking, no blackout, open for all of it; smallest first.
    ---
    tags: [availability]
    parameters:
      - {name: start_time, in: query, required: true, description: with offset, schema: {type: string, format: date-time}}
      - {name: end_time, in: query, required: true, description: with offset; at most 7 days after start_time, schema: {type: string, format: date-time}}
      - {name: min_capacity, in: query, schema: {type: integer, minimum: 1}}
      - name: equipment
        in: query
        description: repeatable; every one must be present; case-insensitive
        style: form
        explode: true
        schema: {type: array, items: {type: string}}
      - {name: location, in: query, description: case-insensitive substring of the location, schema: {type: string}}
      - {name: page, in: query, schema: {type: integer, minimum: 1, default: 1}}
      - {name: per_page, in: query, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
    responses:
      200:
        description: A page of free rooms, smallest capacity first.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/AvailabilityPage'}
      401: {$ref: '#/components/responses/Unauthorized'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    query = parse_query(AvailabilityQuery, multi=frozenset({"equipment"}))
    found = availability_operations.available_rooms(
        services.as_utc(query.start_time),
        services.as_utc(query.end_time),
        query.page,
        query.per_page,
        min_capacity=query.min_capacity,
        equipment=query.equipment,
        location=query.location,
    )
    items = [AvailableRoom.model_validate(room, from_attributes=True).model_dump(mode="json") for room in found.items]
    return jsonify(items=items, page=query.page, per_page=query.per_page, total=found.total)


@availability.get("/free-busy")
@require_auth
def free_busy():
    """Busy intervals of up to 50 rooms over up to 31 days: bookings, blackouts and closed hours (no titles).
    ---
    tags: [availability]
    parameters:
      - name: room_id
        in: query
        required: true
        description: repeatable (`?room_id=1&room_id=2`); at most 50
        style: form
        explode: true
        schema: {type: array, items: {type: integer}, minItems: 1, maxItems: 50}
      - {name: from, in: query, required: true, description: with offset, schema: {type: string, format: date-time}}
      - {name: to, in: query, required: true, description: with offset; at most 31 days after from, schema: {type: string, format: date-time}}
    responses:
      200:
        description: >
          Per room, its time zone and its busy intervals within the window (clipped to it), earliest
          first; `closed` comes from its opening hours in its zone.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/FreeBusy'}
      401: {$ref: '#/components/responses/Unauthorized'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    query = parse_query(FreeBusyQuery, multi=frozenset({"room_id"}))
    body = availability_operations.free_busy_json(query.room_id, services.as_utc(query.from_), services.as_utc(query.to))
    return current_app.response_class(body, mimetype="application/json")
