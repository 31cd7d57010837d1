"""HTTP routes of check-in, the waitlist and the utilisation report: parse, authorise, call, serialise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from servicekit.auth import bearer_token, current_principal, require_admin, require_auth
from servicekit.metrics import metrics_of
from servicekit.validation import with_body, with_optional_body, with_query

from . import checkin, reports, waitlist
from .schemas import CheckIn, UtilizationQuery, WaitlistCreate, WaitlistListQuery

check_ins = Blueprint("check_ins", __name__, url_prefix="/api/reservations")
waitlist_routes = Blueprint("waitlist", __name__, url_prefix="/api/waitlist")
report_routes = Blueprint("reports", __name__, url_prefix="/api/reports")

COUNTERS = {
    "reservation_checkins_total": "Bookings checked in",
    "reservations_released_total": "Bookings released because nobody checked in (no-shows)",
    "waitlist_joins_total": "Waitlist entries created",
    "waitlist_bookings_total": "Waitlist entries booked when their window freed up",
    "waitlist_expiries_total": "Waitlist entries expired (their start passed while waiting)",
}


UTILIZATION_GAUGE = "rooms_utilization_percent"


def register_checkin_metrics(app: Flask) -> None:
    """Create the metrics at start-up (in the request and the worker process), exported at 0."""
    metrics_of(app).declare_counters(COUNTERS)
    metrics_of(app).gauge(UTILIZATION_GAUGE, "Booked hours / open hours of all rooms today (UTC day), in percent")


def refresh_utilization_gauge(app: Flask) -> None:
    """Today's utilisation of all rooms together (worker job): what the dashboard's utilisation panel shows."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    report = reports.utilization(today, today + timedelta(days=1))
    booked = sum(room.booked_hours for room in report.rooms)
    opened = sum(room.open_hours for room in report.rooms)
    metrics_of(app).gauge(UTILIZATION_GAUGE, "").set(round(100 * booked / opened, 2) if opened else 0)


def _window() -> checkin.CheckInWindow:
    return current_app.extensions["reservation-service.checkin_window"]


@check_ins.post("/<int:reservation_id>/check-in")
@require_auth
@with_optional_body(CheckIn)
def check_in(reservation_id: int, body: CheckIn | None):
    """Check in to a booking (its owner or an admin), from CHECKIN_OPEN_MINUTES (10) before the start to
    CHECKIN_GRACE_MINUTES (15) after it. Idempotent: checking in again answers the same.
    In rooms with `auto_release`, a booking nobody checked in to by the end of that window is released.
    ---
    tags: [reservations]
    responses:
      200:
        description: The reservation, with `checked_in_at`.
        schema: {$ref: '#/components/schemas/ReservationOut'}
      403: {$ref: '#/components/responses/Forbidden'}
      409:
        description: >
          Outside the check-in window (the detail says when it opens or when it closed; `opens_at` and
          `closes_at` give both), or the booking is cancelled or released.
        schema: {$ref: '#/components/schemas/CheckInClosed'}
    """
    reservation, checked_in_now = checkin.check_in(reservation_id, current_principal(), _window())
    if checked_in_now:
        metrics_of(current_app).count("reservation_checkins_total")
    return jsonify(reservation.to_dict())


@waitlist_routes.post("")
@require_auth
@with_body(WaitlistCreate)
def join_waitlist(body: WaitlistCreate):
    """Wait for a room and window that is taken (booked or blacked out). When it frees up, it is booked for you
    (first come, first served, with every booking rule) and you are mailed; the entry then says `booked`
    and `reservation_id`. Entries whose start passes expire.
    ---
    responses:
      201: {description: The entry (status waiting)., schema: {$ref: '#/components/schemas/WaitlistEntryOut'}}
      409:
        description: >
          The window is free (type `/problems/slot-free`, with `booking`: the reservation to create instead),
          or you already wait for this room and window (the problem then has `entry_id`: your entry).
        schema:
          anyOf:
            - {$ref: '#/components/schemas/SlotIsFree'}
            - {$ref: '#/components/schemas/Problem'}
      422:
        description: Invalid fields, an unknown or inactive room, or a window the room's policy never allows.
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    entry = waitlist.join(current_principal(), body, bearer_token(), current_app.extensions["reservation-service.booking"])
    metrics_of(current_app).count("waitlist_joins_total")
    return jsonify(waitlist.entry_body(entry)), 201, {"Location": f"/api/waitlist/{entry.id}"}


@waitlist_routes.get("")
@require_auth
@with_query(WaitlistListQuery)
def list_waitlist(query: WaitlistListQuery):
    """Your waitlist entries, latest first (only your own).
    ---
    responses:
      200: {description: A page of your entries., schema: {$ref: '#/components/schemas/WaitlistPage'}}
    """
    return jsonify(waitlist.list_entries(current_principal(), query))


@waitlist_routes.delete("/<int:entry_id>")
@require_auth
def leave_waitlist(entry_id: int):
    """Remove one of your entries (a booking already made from it stays); anyone else's is 404.
    ---
    responses:
      204: {description: Removed.}
    """
    waitlist.leave(entry_id, current_principal())
    return "", 204


@report_routes.get("/utilization")
@require_admin
@with_query(UtilizationQuery)
def utilization(query: UtilizationQuery):
    """Room utilisation in a period (admins): per room booked hours (confirmed bookings), open hours (the room's
    policy, in its time zone), utilisation in percent, bookings, cancellations and releases (no-shows).
    `Accept: text/csv` gives the same rooms as CSV with a header row.
    ---
    responses:
      200:
        description: The report.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/UtilizationReport'}
          text/csv:
            schema: {type: string, description: "header: room_id,name,timezone,booked_hours,open_hours,utilization,bookings,cancellations,releases"}
    """
    report = reports.utilization(query.from_, query.to)
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return Response(reports.as_csv(report), mimetype="text/csv")
    return jsonify(report.model_dump(mode="json", by_alias=True))


def make_checkin_window(config) -> checkin.CheckInWindow:
    return checkin.CheckInWindow(
        open_before=timedelta(minutes=config.checkin_open_minutes), grace=timedelta(minutes=config.checkin_grace_minutes)
    )
