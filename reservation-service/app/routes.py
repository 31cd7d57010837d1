"""HTTP routes: parse, authorise, call the operation, serialise."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel

from servicekit.auth import bearer_token, current_principal, require_admin, require_auth
from servicekit.conditional import if_match_header, json_with_etag
from servicekit.metrics import metrics_of
from servicekit.problems import PROBLEM_JSON
from servicekit.validation import json_object_body, parse_body, with_body, with_query

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


# A refused booking (create or move), `#/components/schemas/BookingRefused`.
BOOKING_REFUSED = {
    "anyOf": [
        {"$ref": "#/components/schemas/BookingConflict"},
        {"$ref": "#/components/schemas/QuotaExceeded"},
        {"$ref": "#/components/schemas/Problem"},
    ]
}


def _settings() -> services.BookingSettings:
    return current_app.extensions["reservation-service.booking"]


BOOKING_COUNTERS = {
    "reservations_created_total": "Reservations booked",
    "reservation_conflicts_total": "Bookings refused because the room was taken",
}


def register_booking_metrics(app) -> None:
    """Create the booking counters at start-up, so they are exported (at 0) before the first booking."""
    metrics_of(app).declare_counters(BOOKING_COUNTERS)


def _count(name: str, amount: int = 1) -> None:
    metrics_of(current_app).count(name, amount)


def _counting_conflicts(operation, refusal: type[Exception] = services.BookingConflict):
    """Run `operation`, counting booking clashes (for the bookings-and-conflicts dashboard)."""
    try:
        return operation()
    except refusal:
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


def idempotent_create(model: type[BaseModel], *, location: str, booked: Callable[[dict], int]):
    """A POST that creates, once per `Idempotency-Key` and body. The view is called as
    `view(principal, body, record_answer)` and returns the created resource as JSON; the body is validated with
    `model` only when the request is not a replay. `booked(answer)` counts the reservations made; `location`
    is the new resource's path with `{id}`. The spec documents the body and the Idempotency-Key header."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper():
            principal = current_principal()
            answer = create_once(lambda record_answer: view(principal, parse_body(model), record_answer))
            if not answer.replayed:
                _count("reservations_created_total", booked(answer.body))
            return created_response(answer, location.format(id=answer.body.get("id")))

        wrapper.body_model = model
        wrapper.idempotent = True
        return wrapper

    return decorate


@reservations.post("")
@require_auth
@idempotent_create(ReservationCreate, location="/api/reservations/{id}", booked=lambda answer: 1)
def create_reservation(principal, body: ReservationCreate, record_answer) -> dict:
    """Book a room. Honours `Idempotency-Key`.
    ---
    responses:
      201: {description: The reservation (status confirmed)., schema: {$ref: '#/components/schemas/ReservationOut'}}
      409:
        description: >
          The room is booked (`conflicts`) or blacked out (`blackouts`) for part of the time; a fair-use
          limit would be passed (type `/problems/quota-exceeded`, saying which limit, with the numbers);
          or the Idempotency-Key is in flight.
        schema: {$ref: '#/components/schemas/BookingRefused'}
      422:
        description: >
          Invalid fields: times without offset, end not after start, start in the past, more attendees
          than MAX_ATTENDEES or the room's capacity, an unknown/inactive room, an Idempotency-Key reused
          with another body, or a booking against the room's policy (outside its opening hours in its
          time zone, shorter than `min_minutes`, longer than `max_minutes`, beyond `horizon_days`):
          each entry of `errors` then names the field and the `rule`, with a message such as
          "Room 'Aurora' is open 08:00–20:00 Europe/Berlin on Mondays."
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    return _counting_conflicts(
        lambda: services.create_reservation(principal, body, bearer_token(), _settings(), on_created=record_answer)
    )


@reservations.get("")
@require_auth
@with_query(ReservationListQuery)
def list_reservations(query: ReservationListQuery):
    """Your reservations; admins see everyone's (and may filter by `user_id`).
    ---
    responses:
      200:
        description: A page of reservations, earliest first.
        schema: {$ref: '#/components/schemas/ReservationPage'}
      403: {$ref: '#/components/responses/Forbidden'}
    """
    return jsonify(services.list_reservations(current_principal(), query))


@reservations.get("/<int:reservation_id>")
@require_auth
def get_reservation(reservation_id: int):
    """One reservation (its owner or an admin), with an `ETag`; `If-None-Match` with the current one → 304.
    ---
    parameters:
      - {$ref: '#/components/parameters/IfNoneMatch'}
    responses:
      200:
        description: The reservation (cancelled ones stay readable).
        schema: {$ref: '#/components/schemas/ReservationOut'}
      403: {$ref: '#/components/responses/Forbidden'}
    """
    return json_with_etag(services.get_reservation(reservation_id, current_principal()).to_dict())


@reservations.put("/<int:reservation_id>")
@require_auth
@with_body(ReservationUpdate)
def update_reservation(reservation_id: int, body: ReservationUpdate):
    """Change a reservation (any subset of fields); the creation rules apply to the result.
    ---
    parameters:
      - {$ref: '#/components/parameters/IfMatch'}
    responses:
      200: {description: The updated reservation., schema: {$ref: '#/components/schemas/ReservationOut'}}
      403: {$ref: '#/components/responses/Forbidden'}
      409:
        description: >
          The new time clashes with a booking (`conflicts`) or a blackout (`blackouts`), or passes a fair-use
          limit (nothing changes); or the reservation is cancelled or released, or was changed meanwhile.
        schema: {$ref: '#/components/schemas/BookingRefused'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    reservation = _counting_conflicts(
        lambda: services.update_reservation(
            reservation_id, current_principal(), body, bearer_token(), _settings(), if_match=if_match_header()
        )
    )
    return json_with_etag(reservation.to_dict())


@reservations.delete("/<int:reservation_id>")
@require_auth
def cancel_reservation(reservation_id: int):
    """Cancel a reservation: its slot is free again, it stays readable with status cancelled.
    ---
    parameters:
      - {$ref: '#/components/parameters/IfMatch'}
    responses:
      204: {description: Cancelled (also when it already was; a released booking stays released).}
      403: {$ref: '#/components/responses/Forbidden'}
      409:
        description: The reservation is already over.
    """
    services.cancel_reservation(reservation_id, current_principal(), if_match=if_match_header())
    return "", 204


@reservations.get("/room/<int:room_id>")
@require_auth
@with_query(ScheduleQuery)
def room_schedule(room_id: int, query: ScheduleQuery):
    """A room's schedule: its confirmed reservations in a window, earliest first.
    ---
    responses:
      200:
        description: >
          The schedule. Other people's reservations show times and title only
          (description and attendees are blank) unless you are an admin.
        schema: {$ref: '#/components/schemas/Schedule'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    items = services.room_schedule(current_principal(), room_id, query.from_, query.to, bearer_token(), _settings())
    return jsonify(room_id=room_id, items=items)


@blackouts.post("")
@require_admin
@with_body(BlackoutCreate)
def create_blackout(body: BlackoutCreate):
    """Black out a room, or every room (`room_id` null), for a time (admins).
    Confirmed reservations overlapping it are cancelled, each with its `reservation.cancelled`
    event (`reason: blackout`, `blackout_id`, `blackout_reason`) and e-mail; bookings into it are refused (409 with `blackouts`).
    ---
    responses:
      201: {description: The blackout., schema: {$ref: '#/components/schemas/BlackoutOut'}}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    blackout, _ = blackout_operations.create_blackout(current_principal(), body, bearer_token(), _settings().rooms)
    answer = BlackoutOut.model_validate(blackout, from_attributes=True).model_dump(mode="json")
    return jsonify(answer), 201, {"Location": f"/api/blackouts/{blackout.id}"}


@blackouts.get("")
@require_auth
@with_query(BlackoutListQuery)
def list_blackouts(query: BlackoutListQuery):
    """Blackouts, earliest first (any user).
    ---
    responses:
      200: {description: A page of blackouts., schema: {$ref: '#/components/schemas/BlackoutPage'}}
    """
    return jsonify(blackout_operations.list_blackouts(query))


@blackouts.delete("/<int:blackout_id>")
@require_admin
def delete_blackout(blackout_id: int):
    """Remove a blackout (admins): the time can be booked again; reservations it cancelled stay cancelled.
    ---
    responses:
      204: {description: Removed.}
    """
    blackout_operations.delete_blackout(blackout_id)
    return "", 204


@availability.get("")
@require_auth
@with_query(AvailabilityQuery)
def available_rooms(query: AvailabilityQuery):
    """Rooms free for the whole window: active, no confirmed booking, no blackout, open for all of it; smallest first.
    ---
    responses:
      200:
        description: A page of free rooms, smallest capacity first.
        schema: {$ref: '#/components/schemas/AvailabilityPage'}
    """
    found = availability_operations.available_rooms(
        query.start_time,
        query.end_time,
        query.page,
        query.per_page,
        min_capacity=query.min_capacity,
        equipment=query.equipment,
        location=query.location,
    )
    items = [AvailableRoom.model_validate(room, from_attributes=True).model_dump(mode="json") for room in found.items]
    return jsonify(items=items, page=query.page, per_page=query.per_page, total=found.total, total_is_estimate=False)


@availability.get("/free-busy")
@require_auth
@with_query(FreeBusyQuery)
def free_busy(query: FreeBusyQuery):
    """Busy intervals of up to 50 rooms over up to 31 days: bookings, blackouts and closed hours (no titles).
    ---
    responses:
      200:
        description: >
          Per room, its time zone and its busy intervals within the window (clipped to it), earliest
          first; `closed` comes from its opening hours in its zone, and covers the whole window for an
          inactive room. A room created a moment ago that this service has not heard of yet is asked of
          room-service (up to 3 such rooms per request); a room that does not exist is 422.
        schema: {$ref: '#/components/schemas/FreeBusy'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    rooms, bearer = _settings().rooms, bearer_token()
    body = availability_operations.free_busy_json(
        query.room_id, query.from_, query.to, lookup=lambda room_id: rooms.lookup(room_id, bearer)
    )
    return current_app.response_class(body, mimetype="application/json")
