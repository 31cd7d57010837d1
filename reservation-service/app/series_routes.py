"""HTTP routes of recurring series: parse, authorise, call `series`, serialise."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from servicekit.auth import bearer_token, current_principal, require_auth
from servicekit.metrics import metrics_of
from servicekit.validation import parse_body, parse_query

from . import series as series_operations
from .routes import BOOKING_COUNTERS, _settings, create_once, created_response
from .schemas import SeriesCancelQuery, SeriesCreate

series = Blueprint("series", __name__, url_prefix="/api/reservations/series")


def _count(name: str, amount: int = 1) -> None:
    if amount:
        metrics_of(current_app).counter(name, BOOKING_COUNTERS[name]).inc(amount)


@series.post("")
@require_auth
def create_series():
    """Book a recurring series: every occurrence of an RFC 5545 RRULE, kept at its wall-clock time in the room's time zone.
    Each occurrence passes the rules of a single booking (opening hours, blackouts, fair-use quotas counted per
    occurrence, attendees within capacity) and becomes an ordinary reservation with `series_id`. The whole series is
    one transaction. Honours `Idempotency-Key` as single creates do. One e-mail for the series.
    ---
    tags: [series]
    parameters:
      - {$ref: '#/components/parameters/IdempotencyKey'}
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/SeriesCreate'}
    responses:
      201:
        description: The series, its booked occurrences and (on_conflict skip) the skipped ones.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/SeriesOut'}
      400: {$ref: '#/components/responses/BadRequest'}
      401: {$ref: '#/components/responses/Unauthorized'}
      409:
        description: >
          on_conflict fail and some occurrence cannot be booked (type `/problems/series-conflict`, each such
          occurrence with its reason and the bookings or blackouts in the way; nothing was booked); or the
          Idempotency-Key is in flight.
        content:
          application/problem+json:
            schema:
              anyOf:
                - {$ref: '#/components/schemas/SeriesConflict'}
                - {$ref: '#/components/schemas/Problem'}
      422:
        description: >
          Invalid fields as for a single booking, or a `recurrence` that is not a supported RRULE (unsupported
          parts such as BYSETPOS or FREQ=HOURLY, neither or both of COUNT and UNTIL, more than
          MAX_SERIES_OCCURRENCES occurrences, an occurrence beyond the room's booking horizon, no occurrence at all).
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    principal = current_principal()

    def book(record_answer) -> dict:
        try:
            return series_operations.create_series(
                principal, parse_body(SeriesCreate), bearer_token(), _settings(), on_created=record_answer
            )
        except series_operations.SeriesConflict:
            _count("reservation_conflicts_total")
            raise

    answer = create_once(book)
    if not answer.replayed:
        _count("reservations_created_total", len(answer.body["occurrences"]))
    return created_response(answer, f"/api/reservations/series/{answer.body.get('id')}")


@series.get("/<int:series_id>")
@require_auth
def get_series(series_id: int):
    """A series (its owner or an admin): every occurrence as it is now (moved or cancelled ones too), and the skipped ones.
    ---
    tags: [series]
    parameters:
      - {name: series_id, in: path, required: true, schema: {type: integer}}
    responses:
      200:
        description: The series.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/SeriesOut'}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    return jsonify(series_operations.read_series(series_id, current_principal()))


@series.delete("/<int:series_id>")
@require_auth
def cancel_series(series_id: int):
    """Cancel the occurrences of a series starting at or after `from` (default and earliest: now); earlier ones stay.
    Each cancelled occurrence gets its `reservation.cancelled` event; the owner gets one e-mail listing them.
    ---
    tags: [series]
    parameters:
      - {name: series_id, in: path, required: true, schema: {type: integer}}
      - {name: from, in: query, description: 'RFC 3339 with an offset; default: now', schema: {type: string, format: date-time}}
    responses:
      204: {description: Cancelled (also when nothing was left to cancel).}
      401: {$ref: '#/components/responses/Unauthorized'}
      403: {$ref: '#/components/responses/Forbidden'}
      404: {$ref: '#/components/responses/NotFound'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    query = parse_query(SeriesCancelQuery)
    series_operations.cancel_series(series_id, current_principal(), query.from_)
    return "", 204
