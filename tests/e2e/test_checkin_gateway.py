"""Check-in, auto-release, the waitlist and the utilisation report through the gateway, with the
services' own worker processes doing the background work (CHECKIN_GRACE_MINUTES=0 and one-second
polls here, so a no-show is released while the test runs)."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import uuid
from datetime import UTC, datetime, timedelta

from servicekit.testing import wait_until

PROBLEM = "application/problem+json"
AUTO_RELEASE = {"open_hours": None, "min_minutes": 5, "max_minutes": 720, "horizon_days": 365, "auto_release": True}


def mails(platform, recipient: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted((platform.state / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == recipient:
            found.append(message)
    return found


def created(gateway, path: str, headers: dict, room_id: int, title: str, start: datetime, end: datetime) -> dict:
    """POST a reservation or a waitlist entry (`path`) for `room_id` from `start` to `end`: 201, the new one."""
    body = {"room_id": room_id, "title": title, "start_time": start.isoformat(), "end_time": end.isoformat()}
    response = gateway.request("POST", path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_no_show_is_released_and_the_waitlist_gets_the_slot(gateway, platform):
    admin = gateway.login("root@example.com", "root password")
    room = gateway.request(
        "POST",
        "/api/rooms",
        json={"name": f"Hot desk {uuid.uuid4().hex[:8]}", "capacity": 4, "booking_policy": AUTO_RELEASE},
        headers=admin,
    )
    assert room.status_code == 201, room.text
    room_id = room.json()["id"]
    owner, owner_headers = gateway.register_and_login()
    waiter, waiter_headers = gateway.register_and_login()

    # Check-in opens 10 minutes before the start: too early for a booking 11 minutes ahead.
    early_start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=11)
    early = created(
        gateway, "/api/reservations", owner_headers, room_id, "Later", early_start, early_start + timedelta(minutes=30)
    )
    refused = gateway.request("POST", f"/api/reservations/{early['id']}/check-in", headers=owner_headers)
    assert refused.status_code == 409 and refused.headers["Content-Type"] == PROBLEM
    assert "opens at" in refused.json()["detail"]

    start = datetime.now(UTC) + timedelta(seconds=3)
    end = start + timedelta(minutes=10)
    reservation = created(gateway, "/api/reservations", owner_headers, room_id, "No-show", start, end)
    entry = created(gateway, "/api/waitlist", waiter_headers, room_id, "Waiting", start + timedelta(minutes=5), end)
    assert entry["status"] == "waiting"

    def released():
        body = gateway.request("GET", f"/api/reservations/{reservation['id']}", headers=owner_headers).json()
        return body if body["status"] == "released" else None

    body = wait_until(released, timeout=30, message="the worker to release the no-show")
    assert body["checked_in_at"] is None and body["sequence"] == 1
    closed = gateway.request("POST", f"/api/reservations/{reservation['id']}/check-in", headers=owner_headers)
    assert closed.status_code == 409

    def entry_booked():
        items = gateway.request("GET", "/api/waitlist", headers=waiter_headers).json()["items"]
        return items if items and items[0]["status"] == "booked" else None

    [booked_entry] = wait_until(entry_booked, timeout=30, message="the waitlist entry to be booked")
    new = gateway.request("GET", f"/api/reservations/{booked_entry['reservation_id']}", headers=waiter_headers).json()
    assert new["user_id"] == waiter["id"] and new["status"] == "confirmed"
    assert gateway.request("GET", "/api/waitlist", headers=owner_headers).json()["items"] == []

    wait_until(
        lambda: [m for m in mails(platform, owner["email"]) if m["Subject"].startswith("Released")],
        timeout=30,
        message="the release e-mail",
    )
    [told] = wait_until(
        lambda: [m for m in mails(platform, waiter["email"]) if m["Subject"].startswith("Booked from your waitlist")],
        timeout=30,
        message="the waitlist e-mail",
    )
    assert f"#{new['id']}" in told.get_body(preferencelist=("plain",)).get_content()

    period = {"from": (start - timedelta(hours=1)).isoformat(), "to": (start + timedelta(hours=1)).isoformat()}
    report = gateway.request("GET", "/api/reports/utilization", params=period, headers=admin)
    assert report.status_code == 200, report.text
    [row] = [r for r in report.json()["rooms"] if r["room_id"] == room_id]
    assert row["releases"] == 1 and row["bookings"] == 2 and row["open_hours"] == 2.0
    as_csv = gateway.request("GET", "/api/reports/utilization", params=period, headers={**admin, "Accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    [line] = [line for line in csv.DictReader(io.StringIO(as_csv.text)) if int(line["room_id"]) == room_id]
    assert {k: line[k] for k in ("bookings", "cancellations", "releases")} == {
        k: str(row[k]) for k in ("bookings", "cancellations", "releases")
    }
    assert float(line["booked_hours"]) == row["booked_hours"]
    assert gateway.request("GET", "/api/reports/utilization", params=period, headers=owner_headers).status_code == 403
