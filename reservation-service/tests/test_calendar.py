"""Calendars (API.md part 2): feed tokens, the iCalendar feeds parsed with `icalendar`, and the
text/calendar part of every notification mail, with one UID and SEQUENCE across create → change → cancel."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests
from conftest import booking
from icalendar import Calendar
from sqlalchemy import select
from test_events_and_mail import mails_to
from test_series import at, created, last_sunday, series_body, today

from app.models import CalendarToken, Reservation
from config import ReservationServiceConfig
from servicekit.config import ConfigError, parse_http_url
from servicekit.db import db
from servicekit.testing import count_rows, resolved, wait_until

PROBLEM = "application/problem+json"
SERIES = "/api/reservations/series"


def new_token(client, headers) -> dict:
    response = client.post("/api/calendar/tokens", headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def feed_path(url: str) -> str:
    """The path and query of a feed URL (the test client talks to the app directly)."""
    return url[url.index("/api/calendar/") :]


def get_feed(client, url: str, **headers):
    return client.get(feed_path(url), headers=headers)


def events_of(response) -> dict[str, object]:
    """The feed's VEVENTs by UID (the body must parse as iCalendar)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.data)
    assert str(calendar["VERSION"]) == "2.0" and calendar.get("PRODID")
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def calendar_parts(message) -> list[tuple[str, Calendar]]:
    """The text/calendar parts of a mail: (the Content-Type's method parameter, the parsed calendar)."""
    return [
        (part.get_param("method"), Calendar.from_ical(part.get_content()))
        for part in message.walk()
        if part.get_content_type() == "text/calendar"
    ]


def the_vevent(calendar: Calendar):
    (event,) = calendar.walk("VEVENT")
    return event


def test_feed_urls_are_on_public_base_url_whatever_host_the_request_names(app, config, client, people, monkeypatch):
    _, headers = people.user()
    forged = {**headers, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    assert new_token(client, forged)["feeds"]["me"].startswith("http://evil.example/api/calendar/me.ics?token=")
    monkeypatch.setitem(app.config, "SERVICE", replace(config, public_base_url="https://rooms.example.org"))
    feeds = new_token(client, forged)["feeds"]
    assert feeds["me"].startswith("https://rooms.example.org/api/calendar/me.ics?token=")
    assert feeds["rooms"].startswith("https://rooms.example.org/api/calendar/rooms/{room_id}.ics?token=")


@pytest.mark.parametrize(
    ("raw", "kept"),
    [("", ""), ("https://rooms.example.org/", "https://rooms.example.org"), ("http://gw:8080/book", "http://gw:8080/book")],
)
def test_public_base_url_is_read_without_its_trailing_slash(raw, kept):
    assert parse_http_url(raw) == kept


@pytest.mark.parametrize(
    "raw",
    ["rooms.example.org", "ftp://rooms.example.org", "https://", "https://x.org/?a=1", "https://x.org/#f", "https://x.org:http"],
)
def test_a_public_base_url_that_is_not_an_absolute_http_url_is_refused_at_start_up(raw):
    required = {name: "http://127.0.0.1:9" for name in ("DATABASE_URL", "JWKS_URL", "USER_SERVICE_URL", "ROOM_SERVICE_URL")}
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        ReservationServiceConfig.from_env({**required, "PUBLIC_BASE_URL": raw})
    assert ReservationServiceConfig.from_env(required).public_base_url == ""


def test_a_feed_token_is_201_with_both_feed_urls_and_is_stored_only_as_its_sha256(app, client, people, rooms):
    _, headers = people.user()
    body = new_token(client, headers)
    assert set(body) == {"id", "token", "feeds"} and len(body["token"]) >= 32
    assert body["feeds"]["me"].endswith(f"/api/calendar/me.ics?token={body['token']}")
    assert body["feeds"]["rooms"].endswith(f"/api/calendar/rooms/{{room_id}}.ics?token={body['token']}")
    assert body["feeds"]["me"].startswith("http://localhost/")
    with app.app_context():
        stored = db.session.get(CalendarToken, body["id"])
        assert stored.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
        assert body["token"] not in db.session.execute(select(CalendarToken.token_hash)).scalars().all()
    room = rooms.create()
    assert get_feed(client, body["feeds"]["rooms"].replace("{room_id}", str(room["id"]))).status_code == 200
    assert client.post("/api/calendar/tokens").status_code == 401


def test_a_feed_token_is_made_from_no_body_or_an_empty_object_only(app, client, people):
    user, headers = people.user()
    assert client.post("/api/calendar/tokens", headers=headers).status_code == 201
    assert client.post("/api/calendar/tokens", json={}, headers=headers).status_code == 201
    refused = {
        "not JSON": ("hello", 400),
        "an array": ("[]", 400),
        "null": ("null", 400),
        "truncated": ('{"user_id": ', 400),
        "an unknown field": ('{"user_id": 1}', 422),
    }
    for case, (body, status) in refused.items():
        response = client.post("/api/calendar/tokens", data=body, content_type="application/json", headers=headers)
        assert response.status_code == status and response.content_type == PROBLEM, case
    unknown = client.post("/api/calendar/tokens", json={"user_id": 1}, headers=headers).get_json()
    assert [e["field"] for e in unknown["errors"]] == ["user_id"]
    assert count_rows(app, CalendarToken, CalendarToken.user_id == user["id"]) == 2  # none for the refused ones


def test_the_spec_documents_the_feed_token_body_as_optional_and_empty(app):
    spec = app.test_client().get("/apispec.json").get_json()
    create = spec["paths"]["/api/calendar/tokens"]["post"]
    assert create["requestBody"]["required"] is False
    schema = resolved(spec, create["requestBody"]["content"]["application/json"]["schema"])
    assert schema["properties"] == {} and schema["additionalProperties"] is False
    assert {"201", "400", "422"} <= set(create["responses"])


def test_my_feed_has_one_vevent_per_own_booking_with_utc_times_location_and_details(client, two_bookers):
    user, headers, other = two_bookers["alice_user"], two_bookers["alice"], two_bookers["bob"]
    room, mine = two_bookers["room"], two_bookers["reservation"]
    second = client.post("/api/reservations", json=booking(room["id"], 3, 30), headers=headers).get_json()
    theirs = client.post("/api/reservations", json=booking(room["id"], 6), headers=other).get_json()
    events = events_of(get_feed(client, new_token(client, headers)["feeds"]["me"]))
    assert set(events) == {f"reservation-{mine['id']}@meeting-rooms.local", f"reservation-{second['id']}@meeting-rooms.local"}
    assert f"reservation-{theirs['id']}@meeting-rooms.local" not in events
    event = events[f"reservation-{mine['id']}@meeting-rooms.local"]
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start.utcoffset() == timedelta(0) and start == utc(mine["start_time"]) and end == utc(mine["end_time"])
    assert "DTSTART:" in event.to_ical().decode() and event.to_ical().decode().split("DTSTART:")[1][15] == "Z"
    assert str(event["SUMMARY"]) == "Planning" and str(event["DESCRIPTION"]) == "secret agenda"
    assert room["name"] in str(event["LOCATION"]) and "Floor 2" in str(event["LOCATION"])
    assert int(event["SEQUENCE"]) == 0 and str(event["STATUS"]) == "CONFIRMED" and event.decoded("DTSTAMP")
    assert str(event["ORGANIZER"]) == f"mailto:{user['email']}"
    assert "mailto:x@example.com" in [str(a) for a in event["ATTENDEE"]]


def test_a_room_feed_shows_other_peoples_bookings_with_time_and_title_only(client, rooms, two_bookers):
    viewer, room, theirs = two_bookers["bob"], two_bookers["room"], two_bookers["reservation"]
    mine = client.post("/api/reservations", json=booking(room["id"], 2, description="My notes"), headers=viewer).get_json()
    elsewhere = client.post("/api/reservations", json=booking(rooms.create()["id"], 0), headers=viewer).get_json()
    url = new_token(client, viewer)["feeds"]["rooms"].replace("{room_id}", str(room["id"]))
    events = events_of(get_feed(client, url))
    assert f"reservation-{elsewhere['id']}@meeting-rooms.local" not in events
    other = events[f"reservation-{theirs['id']}@meeting-rooms.local"]
    assert str(other["SUMMARY"]) == "Planning" and other.decoded("DTSTART") == utc(theirs["start_time"])
    assert not {"DESCRIPTION", "ATTENDEE", "ORGANIZER"} & set(other.keys())
    assert "x@example.com" not in get_feed(client, url).get_data(as_text=True)
    own = events[f"reservation-{mine['id']}@meeting-rooms.local"]
    assert str(own["DESCRIPTION"]) == "My notes"


def test_the_feed_window_is_30_days_back_to_the_horizon_ahead_with_cancellations_marked(app, client, people, rooms):
    user, headers = people.user()
    room = rooms.create()
    now = datetime.now(UTC).replace(microsecond=0)

    def stored(start: datetime, status: str = "confirmed") -> int:
        # Bookings in the past or beyond the horizon cannot be made through the API any more.
        with app.app_context():
            reservation = Reservation(
                room_id=room["id"],
                user_id=user["id"],
                title="Archived",
                start_time=start,
                end_time=start + timedelta(hours=1),
                attendees=[],
                status=status,
            )
            db.session.add(reservation)
            db.session.commit()
            return reservation.id

    too_old = stored(now - timedelta(days=31))
    recent = stored(now - timedelta(days=29))
    cancelled = stored(now + timedelta(days=3), status="cancelled")
    last = stored(now + timedelta(days=364))
    too_far = stored(now + timedelta(days=366))
    token = new_token(client, headers)["feeds"]
    for url in (token["me"], token["rooms"].replace("{room_id}", str(room["id"]))):
        uids = set(events_of(get_feed(client, url)))
        expected = {recent, cancelled, last}
        assert uids == {f"reservation-{i}@meeting-rooms.local" for i in expected}, url
        assert f"reservation-{too_old}@meeting-rooms.local" not in uids
        assert f"reservation-{too_far}@meeting-rooms.local" not in uids
        event = events_of(get_feed(client, url))[f"reservation-{cancelled}@meeting-rooms.local"]
        assert str(event["STATUS"]) == "CANCELLED"


def feed_text(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_a_series_occurrence_is_its_own_vevent_in_utc_in_the_feed(client, people, rooms):
    """Across a DST change in the room's zone: each occurrence a VEVENT of its own (its own UID and SEQUENCE,
    DTSTART/DTEND in UTC), in both feeds and for someone else's series too; no RRULE, EXDATE, RECURRENCE-ID or
    VTIMEZONE; an unchanged feed renders the same (same ETag)."""
    _, headers = people.user()
    _, viewer = people.user()
    room = rooms.create(timezone="Europe/Berlin")
    monday = last_sunday(3, today() + timedelta(days=14)) - timedelta(days=13)  # two Mondays before, two after
    series = created(client.post(SERIES, json=series_body(room, monday, "FREQ=WEEKLY;COUNT=4"), headers=headers))
    moved = series["occurrences"][1]
    new_start = at(monday + timedelta(days=8), "14:00", "Europe/Berlin")
    response = client.put(
        f"/api/reservations/{moved['id']}",
        json={"start_time": new_start.isoformat(), "end_time": (new_start + timedelta(hours=1)).isoformat()},
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    now = client.get(f"{SERIES}/{series['id']}", headers=headers).get_json()["occurrences"]
    assert len(now) == 4 and {utc(o["start_time"]).hour for o in now} == {
        8,
        7,
        13,
    }  # 09:00 CET, 09:00 CEST, the moved one at 14:00 CET
    expected = {f"reservation-{o['id']}@meeting-rooms.local": o for o in now}
    token, theirs = new_token(client, headers)["feeds"], new_token(client, viewer)["feeds"]
    for url in (
        token["me"],
        token["rooms"].replace("{room_id}", str(room["id"])),
        theirs["rooms"].replace("{room_id}", str(room["id"])),
    ):
        text = feed_text(get_feed(client, url))
        for forbidden in ("RRULE", "EXDATE", "RECURRENCE-ID", "TZID", "VTIMEZONE", f"series-{series['id']}@"):
            assert forbidden not in text, (forbidden, url)
        events = events_of(get_feed(client, url))
        assert set(events) == set(expected), url
        for uid, occurrence in expected.items():
            event = events[uid]
            assert event.decoded("DTSTART") == utc(occurrence["start_time"]) and event.decoded("DTEND") == utc(
                occurrence["end_time"]
            )
            raw = event.to_ical().decode()
            assert f"DTSTART:{utc(occurrence['start_time']):%Y%m%dT%H%M%S}Z" in raw
            assert f"DTEND:{utc(occurrence['end_time']):%Y%m%dT%H%M%S}Z" in raw
            assert int(event["SEQUENCE"]) == occurrence["sequence"] and str(event["STATUS"]) == "CONFIRMED"
            assert str(event["SUMMARY"]) == "Stand-up"
        assert int(events[f"reservation-{moved['id']}@meeting-rooms.local"]["SEQUENCE"]) == 1
        assert get_feed(client, url).headers["ETag"] == get_feed(client, url).headers["ETag"]


def test_a_cancelled_occurrence_shows_as_cancelled_in_the_feed(client, people, rooms):
    """Two of four occurrences cancelled (one alone, one by cancelling the series from its date): four VEVENTs,
    the two cancelled ones STATUS:CANCELLED with the SEQUENCE the cancellation raised, in both feeds."""
    _, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=2)
    series = created(client.post(SERIES, json=series_body(room, day, "FREQ=DAILY;COUNT=4"), headers=headers))
    first, second, third, last = series["occurrences"]
    assert client.delete(f"/api/reservations/{second['id']}", headers=headers).status_code == 204
    cancelled_from = client.delete(f"{SERIES}/{series['id']}?from={quote(last['start_time'])}", headers=headers)
    assert cancelled_from.status_code == 204, cancelled_from.get_data(as_text=True)
    token = new_token(client, headers)["feeds"]
    for url in (token["me"], token["rooms"].replace("{room_id}", str(room["id"]))):
        events = events_of(get_feed(client, url))
        assert set(events) == {f"reservation-{o['id']}@meeting-rooms.local" for o in series["occurrences"]}, url
        status = {o["id"]: str(events[f"reservation-{o['id']}@meeting-rooms.local"]["STATUS"]) for o in series["occurrences"]}
        assert status == {first["id"]: "CONFIRMED", second["id"]: "CANCELLED", third["id"]: "CONFIRMED", last["id"]: "CANCELLED"}
        for occurrence in (second, last):
            event = events[f"reservation-{occurrence['id']}@meeting-rooms.local"]
            assert int(event["SEQUENCE"]) == 1 and event.decoded("DTSTART") == utc(occurrence["start_time"])


def test_an_occurrence_moved_to_another_room_is_in_that_rooms_feed_only(client, people, rooms):
    """A series in room A with one occurrence moved to room B: A's feed shows the other occurrences, B's feed that
    one alone, each with its own UID and its own room as LOCATION; the owner's feed shows all three."""
    _, headers = people.user()
    room_a, room_b = rooms.create(name="Aurora"), rooms.create(name="Borealis")
    series = created(
        client.post(SERIES, json=series_body(room_a, today() + timedelta(days=2), "FREQ=DAILY;COUNT=3"), headers=headers)
    )
    first, moved, last = series["occurrences"]
    assert client.put(f"/api/reservations/{moved['id']}", json={"room_id": room_b["id"]}, headers=headers).status_code == 200
    token = new_token(client, headers)["feeds"]

    def uid(occurrence: dict) -> str:
        return f"reservation-{occurrence['id']}@meeting-rooms.local"

    in_a = events_of(get_feed(client, token["rooms"].replace("{room_id}", str(room_a["id"]))))
    in_b = events_of(get_feed(client, token["rooms"].replace("{room_id}", str(room_b["id"]))))
    assert set(in_a) == {uid(first), uid(last)} and set(in_b) == {uid(moved)}
    assert all("Aurora" in str(event["LOCATION"]) for event in in_a.values())
    alone = in_b[uid(moved)]
    assert "Borealis" in str(alone["LOCATION"]) and alone.decoded("DTSTART") == utc(moved["start_time"])
    assert int(alone["SEQUENCE"]) == 1 and str(alone["STATUS"]) == "CONFIRMED"
    mine = events_of(get_feed(client, token["me"]))
    assert set(mine) == {uid(first), uid(moved), uid(last)} and "Borealis" in str(mine[uid(moved)]["LOCATION"])


def test_uid_and_sequence_agree_between_feed_and_mails_across_create_change_cancel(client, people, rooms, infrastructure):
    user, headers = people.user()
    guest = f"guest-{user['id']}@example.com"
    room = rooms.create()
    me = new_token(client, headers)["feeds"]["me"]
    created = client.post("/api/reservations", json=booking(room["id"], 0, attendees=[guest]), headers=headers).get_json()
    uid = f"reservation-{created['id']}@meeting-rooms.local"
    assert created["sequence"] == 0

    def mail(prefix: str, recipient: str = user["email"]):
        return wait_until(
            lambda: [m for m in mails_to(infrastructure.mail_dir, recipient) if m["Subject"].startswith(prefix)],
            message=f"the {prefix} e-mail to {recipient}",
        )[0]

    def invitation(message, method: str):
        (part_method, calendar), *rest = calendar_parts(message)
        assert not rest and part_method == method and str(calendar["METHOD"]) == method
        return the_vevent(calendar)

    for recipient in (user["email"], guest):
        sent = invitation(mail("Booked", recipient), "REQUEST")
        assert str(sent["UID"]) == uid and int(sent["SEQUENCE"]) == 0
        assert sent.decoded("DTSTART") == utc(created["start_time"])
    in_feed = events_of(get_feed(client, me))[uid]
    assert int(in_feed["SEQUENCE"]) == 0

    start, end = booking(room["id"], 1)["start_time"], booking(room["id"], 1)["end_time"]
    changed = client.put(
        f"/api/reservations/{created['id']}", json={"start_time": start, "end_time": end}, headers=headers
    ).get_json()
    assert changed["sequence"] == 1
    sent = invitation(mail("Changed"), "REQUEST")
    in_feed = events_of(get_feed(client, me))[uid]
    assert str(sent["UID"]) == str(in_feed["UID"]) == uid
    assert int(sent["SEQUENCE"]) == int(in_feed["SEQUENCE"]) == 1
    assert sent.decoded("DTSTART") == in_feed.decoded("DTSTART") == utc(start)

    assert client.delete(f"/api/reservations/{created['id']}", headers=headers).status_code == 204
    sent = invitation(mail("Cancelled"), "CANCEL")
    in_feed = events_of(get_feed(client, me))[uid]
    assert str(sent["UID"]) == uid and str(sent["STATUS"]) == str(in_feed["STATUS"]) == "CANCELLED"
    assert int(sent["SEQUENCE"]) == int(in_feed["SEQUENCE"]) == 2
    assert client.get(f"/api/reservations/{created['id']}", headers=headers).get_json()["sequence"] == 2


def test_a_missing_unknown_or_revoked_feed_token_is_401(client, people, rooms):
    _, headers = people.user()
    _, stranger = people.user()
    room = rooms.create()
    token = new_token(client, headers)
    room_url = token["feeds"]["rooms"].replace("{room_id}", str(room["id"]))
    assert client.delete(f"/api/calendar/tokens/{token['id']}", headers=stranger).status_code == 404
    assert get_feed(client, token["feeds"]["me"]).status_code == 200  # someone else cannot revoke it
    assert client.delete(f"/api/calendar/tokens/{token['id']}", headers=headers).status_code == 204
    refused = {
        "revoked": get_feed(client, token["feeds"]["me"]),
        "revoked, room feed": get_feed(client, room_url),
        "unknown": client.get("/api/calendar/me.ics?token=never-issued"),
        "unknown, room feed": client.get(f"/api/calendar/rooms/{room['id']}.ics?token=never-issued"),
        "unknown, no such room": client.get("/api/calendar/rooms/424242.ics?token=never-issued"),
        "missing": client.get("/api/calendar/me.ics"),
        "missing, room feed": client.get(f"/api/calendar/rooms/{room['id']}.ics"),
        "missing, other parameters": client.get("/api/calendar/me.ics?color=red"),
        "empty": client.get("/api/calendar/me.ics?token="),
        "longer than any token": client.get("/api/calendar/me.ics?token=" + "x" * 500),
    }
    for case, response in refused.items():
        assert response.status_code == 401 and response.content_type == PROBLEM, case
    # One answer whatever the case: nothing tells whether the token ever existed.
    assert {str(sorted(r.get_json().items())) for r in refused.values()} == {str(sorted(refused["unknown"].get_json().items()))}
    assert set(refused["unknown"].get_json()) >= {"type", "title", "status", "detail"}
    assert refused["unknown"].get_json()["status"] == 401
    assert client.delete(f"/api/calendar/tokens/{token['id']}", headers=headers).status_code == 204  # again: no change
    assert client.delete("/api/calendar/tokens/999999999", headers=headers).status_code == 404
    other = new_token(client, headers)
    assert get_feed(client, other["feeds"]["me"]).status_code == 200  # revoking one token leaves the others


def test_a_deactivated_users_feed_tokens_are_401(client, people, rooms):
    user, headers = people.user()
    token = new_token(client, headers)
    assert get_feed(client, token["feeds"]["me"]).status_code == 200
    people.deactivate(user["id"])
    wait_until(lambda: get_feed(client, token["feeds"]["me"]).status_code == 401, message="the feed token to stop working")
    room_url = token["feeds"]["rooms"].replace("{room_id}", str(rooms.create()["id"]))
    refused = get_feed(client, room_url)
    assert refused.status_code == 401 and refused.content_type == PROBLEM
    assert refused.get_json() == client.get("/api/calendar/me.ics?token=never-issued").get_json()


def test_a_feed_token_from_before_a_deactivation_stays_dead_after_the_reactivation(client, people):
    user, headers = people.user()
    old = new_token(client, headers)["feeds"]["me"]
    assert get_feed(client, old).status_code == 200
    people.deactivate(user["id"])
    wait_until(lambda: get_feed(client, old).status_code == 401, message="the feed token to stop working")
    reactivated = requests.put(
        f"{people.url}/api/users/{user['id']}", json={"is_active": True}, headers=people.admin()[1], timeout=10
    )
    assert reactivated.status_code == 200, reactivated.text
    again = people.login(user["email"], "long enough")
    # Made after the reactivation, it works once reservation-service has consumed it.
    fresh = wait_until(
        lambda: (made := client.post("/api/calendar/tokens", headers=again)).status_code == 201 and made.get_json(),
        message="the new access token to be accepted",
    )["feeds"]["me"]
    wait_until(lambda: get_feed(client, fresh).status_code == 200, message="the reactivation to reach reservation-service")
    refused = get_feed(client, old)
    assert refused.status_code == 401 and refused.content_type == PROBLEM
    assert refused.get_json() == client.get("/api/calendar/me.ics?token=never-issued").get_json()


def test_feeds_send_an_etag_and_if_none_match_is_304_until_something_changes(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    created = client.post("/api/reservations", json=booking(room["id"]), headers=headers).get_json()
    me = new_token(client, headers)["feeds"]["me"]
    first = get_feed(client, me)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert get_feed(client, me).headers["ETag"] == etag  # an unchanged feed renders the same
    unchanged = get_feed(client, me, **{"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b"" and unchanged.headers["ETag"] == etag
    client.put(f"/api/reservations/{created['id']}", json={"title": "Renamed"}, headers=headers)
    after = get_feed(client, me, **{"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag and b"Renamed" in after.data


def test_feed_queries_are_validated_once_the_token_is_accepted(client, people):
    _, headers = people.user()
    token = new_token(client, headers)["token"]
    extra = client.get(f"/api/calendar/me.ics?token={token}&color=red")
    assert extra.status_code == 422 and [e["field"] for e in extra.get_json()["errors"]] == ["color"]
    assert client.get("/api/calendar/me.ics?color=red").status_code == 401  # the token is asked for first
    assert client.get(f"/api/calendar/rooms/424242.ics?token={token}").status_code == 404  # no such room


def test_the_spec_documents_401_for_the_feed_token_and_no_404_or_422_for_it(app):
    spec = app.test_client().get("/apispec.json").get_json()
    me, room = spec["paths"]["/api/calendar/me.ics"]["get"], spec["paths"]["/api/calendar/rooms/{room_id}.ics"]["get"]
    for feed in (me, room):
        refused = feed["responses"]["401"]
        assert "token" in refused["description"] and "Problem" in str(refused["content"][PROBLEM])
        assert "token" not in str(feed["responses"].get("404", ""))
        assert "other than `token`" in feed["responses"]["422"]["description"]  # an unknown parameter, not the token
        assert feed["security"] == [] and [p["name"] for p in feed["parameters"] if p.get("in") == "query"] == ["token"]
    assert "404" not in me["responses"]
    not_found = room["responses"]["404"]
    not_found = spec["components"]["responses"][not_found["$ref"].rsplit("/", 1)[1]] if "$ref" in not_found else not_found
    assert "room" in not_found["description"]
