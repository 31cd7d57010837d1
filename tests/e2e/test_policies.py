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


def test_finding_a_free_room_and_free_busy_through_the_gateway(gateway):
    admin = gateway.login("root@example.com", "root password")
    _, headers = gateway.register_and_login()
    place = f"Annex {datetime.now(UTC).timestamp()}"
    small, large = (
        gateway.request(
            "POST",
            "/api/rooms",
            json={"name": f"{name} {place}", "capacity": capacity, "location": place, "equipment": [screen]},
            headers=admin,
        ).json()
        for name, capacity, screen in (("Nook", 3, "Screen"), ("Hall", 30, "screen"))
    )
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    window = {"start_time": start.isoformat(), "end_time": (start + timedelta(hours=1)).isoformat()}

    def free() -> list[int]:
        response = gateway.request(
            "GET", "/api/availability", params={**window, "location": place, "equipment": "screen"}, headers=headers
        )
        assert response.status_code == 200, response.text
        return [room["room_id"] for room in response.json()["items"]]

    wait_until(lambda: free() == [small["id"], large["id"]], timeout=30, message="both rooms to reach reservation-service")
    taken = gateway.request(
        "POST", "/api/reservations", json={"room_id": small["id"], "title": "Taken", **window}, headers=headers
    )
    assert taken.status_code == 201, taken.text
    assert free() == [large["id"]]
    clash = gateway.request(
        "POST", "/api/reservations", json={"room_id": small["id"], "title": "Again", **window}, headers=headers
    )
    assert clash.status_code == 409
    assert {"room_id": large["id"], **window} in [
        {**s, "start_time": datetime.fromisoformat(s["start_time"]).isoformat()} for s in clash.json()["suggestions"]
    ]
    busy = gateway.request(
        "GET",
        "/api/availability/free-busy",
        params={"room_id": [small["id"], large["id"]], "from": window["start_time"], "to": window["end_time"]},
        headers=headers,
    )
    assert busy.status_code == 200, busy.text
    assert [len(room["busy"]) for room in busy.json()["rooms"]] == [1, 0]
    assert busy.json()["rooms"][0]["busy"][0]["kind"] == "reservation"
