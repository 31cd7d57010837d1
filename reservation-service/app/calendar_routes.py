"""HTTP routes of the calendar feeds: feed tokens (bearer-authenticated) and the feeds themselves
(authenticated by the token in the URL, since calendar apps cannot send a bearer header)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from servicekit.auth import current_principal, require_auth
from servicekit.conditional import body_with_etag
from servicekit.db import utcnow
from servicekit.validation import parse_query

from . import calendars
from .schemas import FeedQuery

calendar = Blueprint("calendar", __name__, url_prefix="/api/calendar")

ICALENDAR = "text/calendar"
# Revalidate every time (cheap with If-None-Match), so a revoked token stops a cached feed at once.
FEED_HEADERS = {"Cache-Control": "private, no-cache"}


def _window() -> calendars.FeedWindow:
    return calendars.FeedWindow.around(utcnow(), current_app.extensions["reservation-service.booking"].horizon)


def _feed_holder() -> int:
    return calendars.feed_holder(parse_query(FeedQuery).token)


@calendar.post("/tokens")
@require_auth
def create_token():
    """A new feed token and the URLs of your feeds, for a calendar app to subscribe to.
    The token is shown only in this answer (only its SHA-256 is kept); revoke it with DELETE.
    ---
    tags: [calendar]
    responses:
      201:
        description: The token and the feed URLs (`rooms` is a template holding `{room_id}`).
        content:
          application/json:
            schema: {$ref: '#/components/schemas/CalendarTokenCreated'}
      401: {$ref: '#/components/responses/Unauthorized'}
    """
    token, secret = calendars.create_token(current_principal())
    base = request.host_url.rstrip("/") + calendar.url_prefix
    feeds = {"me": f"{base}/me.ics?token={secret}", "rooms": f"{base}/rooms/{{room_id}}.ics?token={secret}"}
    return jsonify(id=token.id, token=secret, feeds=feeds), 201


@calendar.delete("/tokens/<int:token_id>")
@require_auth
def revoke_token(token_id: int):
    """Revoke one of your feed tokens: its feed URLs answer 404 from now on.
    ---
    tags: [calendar]
    parameters:
      - {name: token_id, in: path, required: true, schema: {type: integer}}
    responses:
      204: {description: Revoked (also when it already was).}
      401: {$ref: '#/components/responses/Unauthorized'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    calendars.revoke_token(token_id, current_principal())
    return "", 204


@calendar.get("/me.ics")
def my_feed():
    """Your own bookings as an iCalendar feed (the feed token authenticates: no bearer header).
    ---
    tags: [calendar]
    security: []
    parameters:
      - {name: token, in: query, required: true, description: a feed token, schema: {type: string, minLength: 1, maxLength: 200}}
      - {$ref: '#/components/parameters/IfNoneMatch'}
    responses:
      200:
        description: >
          iCalendar (RFC 5545), one VEVENT per booking from 30 days ago to the booking horizon ahead:
          stable UID, SEQUENCE growing with each change, DTSTART/DTEND in UTC, STATUS:CANCELLED for
          cancellations, LOCATION from the room.
        headers:
          ETag: {description: The entity tag of the feed (for If-None-Match)., schema: {type: string}}
        content:
          text/calendar:
            schema: {type: string}
      304: {$ref: '#/components/responses/NotModified'}
      404:
        description: Unknown or revoked token, or a deactivated user's token.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    holder = _feed_holder()
    return body_with_etag(calendars.my_feed(holder, _window()), ICALENDAR, headers=FEED_HEADERS)


@calendar.get("/rooms/<int:room_id>.ics")
def room_feed(room_id: int):
    """A room's bookings as an iCalendar feed; other people's show time and title only.
    ---
    tags: [calendar]
    security: []
    parameters:
      - {name: room_id, in: path, required: true, schema: {type: integer}}
      - {name: token, in: query, required: true, description: a feed token, schema: {type: string, minLength: 1, maxLength: 200}}
      - {$ref: '#/components/parameters/IfNoneMatch'}
    responses:
      200:
        description: >
          iCalendar (RFC 5545), one VEVENT per booking from 30 days ago to the booking horizon ahead:
          stable UID, SEQUENCE growing with each change, DTSTART/DTEND in UTC, STATUS:CANCELLED for
          cancellations, LOCATION from the room.
        headers:
          ETag: {description: The entity tag of the feed (for If-None-Match)., schema: {type: string}}
        content:
          text/calendar:
            schema: {type: string}
      304: {$ref: '#/components/responses/NotModified'}
      404:
        description: Unknown or revoked token, a deactivated user's token, or no such room.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
      422: {$ref: '#/components/responses/ValidationFailed'}
    """
    holder = _feed_holder()
    return body_with_etag(calendars.room_feed(room_id, holder, _window()), ICALENDAR, headers=FEED_HEADERS)
