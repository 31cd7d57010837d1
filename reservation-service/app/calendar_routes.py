"""HTTP routes of the calendar feeds: feed tokens (bearer-authenticated) and the feeds themselves
(authenticated by the token in the URL, since calendar apps cannot send a bearer header)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flasgger import swag_from
from flask import Blueprint, current_app, jsonify, request

from servicekit.auth import current_principal, require_auth
from servicekit.conditional import body_with_etag
from servicekit.db import utcnow
from servicekit.validation import with_optional_body, with_query

from . import calendars
from .schemas import CalendarTokenCreate, FeedQuery

calendar = Blueprint("calendar", __name__, url_prefix="/api/calendar")

ICALENDAR = "text/calendar"
# Revalidate every time (cheap with If-None-Match), so a revoked token stops a cached feed at once.
FEED_HEADERS = {"Cache-Control": "private, no-cache"}
# The answer of both feeds (`#/components/responses/CalendarFeed`).
FEED_RESPONSE = {
    "description": "iCalendar (RFC 5545), one VEVENT per booking from 30 days ago to the booking horizon ahead, each "
    "occurrence of a series included: stable UID, SEQUENCE growing with each change, DTSTART/DTEND in UTC, "
    "STATUS:CANCELLED for cancellations, LOCATION from the room.",
    "headers": {"ETag": {"description": "The entity tag of the feed (for If-None-Match).", "schema": {"type": "string"}}},
    "content": {ICALENDAR: {"schema": {"type": "string"}}},
}


def _feed_operation(**responses: dict) -> dict:
    """A feed's OpenAPI operation: authenticated by its token (no bearer header), revalidated with If-None-Match.
    The kit adds 304 (If-None-Match), and makes each error answer here a problem document."""
    return {
        "tags": ["calendar"],
        "security": [],
        "parameters": [{"$ref": "#/components/parameters/IfNoneMatch"}],
        "responses": {
            "200": {"$ref": "#/components/responses/CalendarFeed"},
            "401": {
                "description": "The feed token is missing, unknown or revoked, its holder is deactivated, or it was made "
                "before the holder's deactivation or role change (one answer for all)."
            },
            "422": {"description": "A query parameter other than `token` (asked only once the token is accepted)."},
            **responses,
        },
    }


def feed_token_required(view: Callable) -> Callable:
    """Authenticate a feed request by its `token` before anything else, as `@require_auth` does for a bearer
    token (put it above `@with_query`): missing, unknown or revoked, or a deactivated user's, it is a 401 that
    does not say which, never a 422 naming the parameter. The view gets the token's holder as `holder`."""

    @functools.wraps(view)
    def authenticated(*args, **kwargs):
        tokens = request.args.getlist("token")  # the last one when repeated, as `parse_query` reads it
        return view(*args, holder=calendars.feed_holder(tokens[-1] if tokens else None), **kwargs)

    return authenticated


def _window() -> calendars.FeedWindow:
    return calendars.FeedWindow.around(utcnow(), current_app.extensions["reservation-service.booking"].horizon)


@calendar.post("/tokens")
@require_auth
@with_optional_body(CalendarTokenCreate)
def create_token(body: CalendarTokenCreate | None):
    """A new feed token and the URLs of your feeds, for a calendar app to subscribe to.
    The token is shown only in this answer (only its SHA-256 is kept); revoke it with DELETE.
    ---
    responses:
      201:
        description: >
          The token and the feed URLs (`rooms` is a template holding `{room_id}`), on PUBLIC_BASE_URL when the
          service has it, else on the host the client called.
        schema: {$ref: '#/components/schemas/CalendarTokenCreated'}
    """
    token, secret = calendars.create_token(current_principal())
    # PUBLIC_BASE_URL when set: a forged Host header must not put another site in the URLs a user subscribes to.
    base = (current_app.config["SERVICE"].public_base_url or request.host_url.rstrip("/")) + calendar.url_prefix
    feeds = {"me": f"{base}/me.ics?token={secret}", "rooms": f"{base}/rooms/{{room_id}}.ics?token={secret}"}
    return jsonify(id=token.id, token=secret, feeds=feeds), 201


@calendar.delete("/tokens/<int:token_id>")
@require_auth
def revoke_token(token_id: int):
    """Revoke one of your feed tokens: its feed URLs answer 401 from now on.
    ---
    responses:
      204: {description: Revoked (also when it already was).}
    """
    calendars.revoke_token(token_id, current_principal())
    return "", 204


@calendar.get("/me.ics")
@feed_token_required
@with_query(FeedQuery)
@swag_from(_feed_operation())
def my_feed(holder: int, query: FeedQuery):
    """Your own bookings as an iCalendar feed (the feed token authenticates: no bearer header)."""
    return body_with_etag(calendars.my_feed(holder, _window()), ICALENDAR, headers=FEED_HEADERS)


@calendar.get("/rooms/<int:room_id>.ics")
@feed_token_required
@with_query(FeedQuery)
@swag_from(_feed_operation(**{"404": {"description": "No such room (or a deleted one)."}}))
def room_feed(room_id: int, holder: int, query: FeedQuery):
    """A room's bookings as an iCalendar feed; other people's show time and title only."""
    return body_with_etag(calendars.room_feed(room_id, holder, _window()), ICALENDAR, headers=FEED_HEADERS)
