"""Part 2 through the gateway: a room's time zone and opening hours set in room-service are enforced by
reservation-service, and an admin's blackout cancels a booking (with its e-mail) and blocks new ones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from test_story import mails

from servicekit.testing import wait_until


def test_opening_hours_in_the_rooms_zone_and_a_blackout_through_the_gateway(gateway, platform):
    admin = gateway.login("root@example.com", "root password")
    user, headers = gateway.register_and_login()
    hours = {day: [["08:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    created = gateway.request(
        "POST",
        "/api/rooms",
        json={"name": "Aurora", "capacity": 6, "timezone": "Europe/Berlin", "booking_policy": {"open_hours": hours}},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    room = created.json()
    assert room["booking_policy"]["open_hours"] == hours and room["booking_policy"]["max_minutes"] == 720

    today = datetime.now(UTC).date()
    monday = today + timedelta(days=(0 - today.weekday()) % 7 + 7)
    berlin = ZoneInfo("Europe/Berlin")

    def at(clock: time) -> str:
        return datetime.combine(monday, clock, tzinfo=berlin).isoformat()

    early = {"room_id": room["id"], "title": "Too early", "start_time": at(time(7)), "end_time": at(time(8))}
    refused = gateway.request("POST", "/api/reservations", json=early, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["message"] == "Room 'Aurora' is open 08:00–20:00 Europe/Berlin on Mondays."

    slot = {"room_id": room["id"], "title": "Kick-off", "start_time": at(time(9)), "end_time": at(time(10))}
    booked = gateway.request("POST", "/api/reservations", json=slot, headers=headers)
    assert booked.status_code == 201, booked.text

    closing = {"room_id": room["id"], "start_time": at(time(8)), "end_time": at(time(12)), "reason": "Floor works"}
    assert gateway.request("POST", "/api/blackouts", json=closing, headers=headers).status_code == 403
    blackout = gateway.request("POST", "/api/blackouts", json=closing, headers=admin)
    assert blackout.status_code == 201, blackout.text
    listed = gateway.request("GET", "/api/blackouts", params={"room_id": room["id"]}, headers=headers).json()
    assert [b["id"] for b in listed["items"]] == [blackout.json()["id"]]

    mine = gateway.request("GET", f"/api/reservations/{booked.json()['id']}", headers=headers).json()
    assert mine["status"] == "cancelled"
    again = gateway.request("POST", "/api/reservations", json=slot, headers=headers)
    assert again.status_code == 409 and again.json()["blackouts"][0]["reason"] == "Floor works"
    wait_until(
        lambda: any(m.startswith("Cancelled: Kick-off") for m in mails(platform, user["email"])),
        timeout=30,
        message="the cancellation e-mail",
    )
    assert gateway.request("DELETE", f"/api/blackouts/{blackout.json()['id']}", headers=admin).status_code == 204
    assert gateway.request("POST", "/api/reservations", json=slot, headers=headers).status_code == 201
