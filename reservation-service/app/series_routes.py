"""HTTP routes of recurring series: parse, authorise, call `series`, serialise."""

from __future__ import annotations

from flask import Blueprint, jsonify

from servicekit.auth import bearer_token, current_principal, require_auth
from servicekit.validation import with_query

from . import series as series_operations
from .routes import _counting_conflicts, _settings, idempotent_create
from .schemas import SeriesCancelQuery, SeriesCreate

series = Blueprint("series", __name__, url_prefix="/api/reservations/series")


@series.post("")
@require_auth
@idempotent_create(SeriesCreate, location="/api/reservations/series/{id}", booked=lambda answer: len(answer["occurrences"]))
def create_series(principal, body: SeriesCreate, record_answer) -> dict:
    """Book a recurring series: every occurrence of an RFC 5545 RRULE, kept at its wall-clock time in the room's time zone.
    Each occurrence passes the rules of a single booking (opening hours, blackouts, fair-use quotas counted per
    occurrence, attendees within capacity) and becomes an ordinary reservation with `series_id`. The whole series is
    one transaction. Honours `Idempotency-Key` as single creates do. One e-mail for the series.
    ---
    responses:
      201:
        description: The series, its booked occurrences and (on_conflict skip) the skipped ones.
        schema: {$ref: '#/components/schemas/SeriesOut'}
      409:
        description: >
          on_conflict fail and some occurrence cannot be booked (type `/problems/series-conflict`, each such
          occurrence with its reason and the bookings or blackouts in the way; nothing was booked); or the
          Idempotency-Key is in flight.
        schema:
          anyOf:
            - {$ref: '#/components/schemas/SeriesConflict'}
            - {$ref: '#/components/schemas/Problem'}
      422:
        description: >
          Invalid fields as for a single booking, or a `recurrence` that is not a supported RRULE (unsupported
          parts such as BYSETPOS or FREQ=HOURLY, neither or both of COUNT and UNTIL, more than
          MAX_SERIES_OCCURRENCES occurrences, an occurrence beyond the room's booking horizon, no occurrence at all).
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    return _counting_conflicts(
        lambda: series_operations.create_series(principal, body, bearer_token(), _settings(), on_created=record_answer),
        series_operations.SeriesConflict,
    )


@series.get("/<int:series_id>")
@require_auth
def get_series(series_id: int):
    """A series (its owner or an admin): every occurrence as it is now (moved or cancelled ones too), and the skipped ones.
    ---
    responses:
      200: {description: The series., schema: {$ref: '#/components/schemas/SeriesOut'}}
      403: {$ref: '#/components/responses/Forbidden'}
    """
    return jsonify(series_operations.read_series(series_id, current_principal()))


@series.delete("/<int:series_id>")
@require_auth
@with_query(SeriesCancelQuery)
def cancel_series(series_id: int, query: SeriesCancelQuery):
    """Cancel the occurrences of a series starting at or after `from` (default and earliest: now); earlier ones stay.
    Each cancelled occurrence gets its `reservation.cancelled` event; the owner gets one e-mail listing them.
    ---
    responses:
      204: {description: Cancelled (also when nothing was left to cancel).}
      403: {$ref: '#/components/responses/Forbidden'}
    """
    series_operations.cancel_series(series_id, current_principal(), query.from_)
    return "", 204
