"""Calendars and concurrency control through the gateway: feed URLs that work as handed out (no
bearer header), feeds and mail parsed with `icalendar`, ETags, 304 and 412 as clients see them."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from servicekit.testing import wait_until

PROBLEM = "application/problem+json"


def invitations(platform, recipient: str) -> list[tuple[str, Calendar]]:
    """(subject, calendar part) of each mail to `recipient` that carries a text/calendar part."""
    found = []
    for path in sorted((platform.state / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] != recipient:
            continue
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                found.append((message["Subject"], Calendar.from_ical(part.get_content())))
    return found


def a_room(gateway, admin) -> dict:
    created = gateway.request(
        "POST", "/api/rooms", json={"name": f"Cal {uuid.uuid4().hex[:8]}", "capacity": 4, "location": "Floor 5"}, headers=admin
    )
    assert created.status_code == 201, created.text
    return created.json()


def a_slot(room_id: int, days: int = 4) -> dict:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(hour=10, minute=0, second=0, microsecond=0)
    return {
        "room_id": room_id,
        "title": "Roadmap",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
    }


def test_feed_urls_work_as_handed_out_without_a_bearer_header_until_revoked(gateway, platform):
    admin = gateway.login("root@example.com", "root password")
    room = a_room(gateway, admin)
    user, headers = gateway.register_and_login()
    booked = gateway.request("POST", "/api/reservations", json=a_slot(room["id"]), headers=headers)
    assert booked.status_code == 201, booked.text
    token = gateway.request("POST", "/api/calendar/tokens", headers=headers)
    assert token.status_code == 201, token.text
    feeds = token.json()["feeds"]
    assert feeds["me"].startswith(gateway.base + "/api/calendar/me.ics?token=")

    uid = f"reservation-{booked.json()['id']}@meeting-rooms.local"
    for url in (feeds["me"], feeds["rooms"].replace("{room_id}", str(room["id"]))):
        feed = gateway.session.get(url, timeout=10)  # exactly what a calendar app does
        assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
        (event,) = Calendar.from_ical(feed.content).walk("VEVENT")
        assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 0 and room["name"] in str(event["LOCATION"])
        assert gateway.session.get(url, headers={"If-None-Match": feed.headers["ETag"]}, timeout=10).status_code == 304

    (subject, invitation), *_ = wait_until(
        lambda: invitations(platform, user["email"]), timeout=30, message="the confirmation with its invitation"
    )
    assert subject.startswith("Booked") and str(invitation["METHOD"]) == "REQUEST"
    assert str(invitation.walk("VEVENT")[0]["UID"]) == uid

    revoked = gateway.request("DELETE", f"/api/calendar/tokens/{token.json()['id']}", headers=headers)
    assert revoked.status_code == 204
    gone = gateway.session.get(feeds["me"], timeout=10)
    assert gone.status_code == 401 and gone.headers["Content-Type"] == PROBLEM


def test_etags_304_and_412_on_reservations_and_rooms_through_the_gateway(gateway):
    admin = gateway.login("root@example.com", "root password")
    room = a_room(gateway, admin)
    _, headers = gateway.register_and_login()
    booked = gateway.request("POST", "/api/reservations", json=a_slot(room["id"], 5), headers=headers).json()
    for path, auth, change in (
        (f"/api/reservations/{booked['id']}", headers, {"title": "Roadmap v2"}),
        (f"/api/rooms/{room['id']}", admin, {"capacity": 6}),
    ):
        first = gateway.request("GET", path, headers=auth)
        etag = first.headers["ETag"]
        cached = gateway.request("GET", path, headers={**auth, "If-None-Match": etag})
        assert cached.status_code == 304 and cached.content == b"" and cached.headers["ETag"] == etag
        assert gateway.request("PUT", path, json=change, headers={**auth, "If-Match": etag}).status_code == 200
        stale = gateway.request("PUT", path, json=change, headers={**auth, "If-Match": etag})
        assert stale.status_code == 412 and stale.headers["Content-Type"] == PROBLEM
        refused = gateway.request("DELETE", path, headers={**auth, "If-Match": etag})
        assert refused.status_code == 412 and refused.headers["Content-Type"] == PROBLEM
        assert gateway.request("GET", path, headers=auth).status_code == 200
