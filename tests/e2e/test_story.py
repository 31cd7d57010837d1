"""The whole platform doing its job through the gateway: rooms, bookings, a clash, a cancellation,
the freed slot re-booked, the schedule, the cascade of a deleted room, and the e-mails."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

from servicekit.testing import wait_until


def mails(platform, recipient: str) -> list[str]:
    found = []
    for path in sorted((platform.state / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == recipient:
            found.append(f"{message['Subject']}\n{message.get_body(preferencelist=('plain',)).get_content()}")
    return found


def test_admin_manages_rooms_and_users_only_read_them(gateway):
    admin = gateway.login("root@example.com", "root password")
    _, user = gateway.register_and_login()
    created = gateway.request(
        "POST",
        "/api/rooms",
        json={"name": "Story Lab", "capacity": 6, "location": "Floor 1", "equipment": ["Projector"]},
        headers=admin,
    )
    assert created.status_code == 201
    room = created.json()
    assert gateway.request("POST", "/api/rooms", json={"name": "Sneaky", "capacity": 2}, headers=user).status_code == 403
    found = gateway.request("GET", "/api/rooms?equipment=projector&min_capacity=5", headers=user).json()["items"]
    assert room["id"] in [r["id"] for r in found]
    assert gateway.request("PUT", f"/api/rooms/{room['id']}", json={"capacity": 8}, headers=admin).json()["capacity"] == 8
    assert gateway.request("DELETE", f"/api/rooms/{room['id']}", headers=admin).status_code == 204
    assert gateway.request("GET", f"/api/rooms/{room['id']}", headers=user).status_code == 404


def test_two_people_book_one_clashes_one_cancels_and_the_slot_is_taken_again(gateway, platform):
    admin = gateway.login("root@example.com", "root password")
    room = gateway.request(
        "POST", "/api/rooms", json={"name": "Story Room", "capacity": 4, "location": "Floor 2"}, headers=admin
    ).json()
    alice, alice_headers = gateway.register_and_login()
    bob, bob_headers = gateway.register_and_login()
    start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    slot = {
        "room_id": room["id"],
        "title": "Design review",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
    }

    first = gateway.request("POST", "/api/reservations", json=slot, headers=alice_headers)
    assert first.status_code == 201, first.text
    clash = gateway.request("POST", "/api/reservations", json={**slot, "title": "Standup"}, headers=bob_headers)
    assert clash.status_code == 409
    assert clash.json()["conflicts"][0]["reservation_id"] == first.json()["id"]
    assert gateway.request("DELETE", f"/api/reservations/{first.json()['id']}", headers=alice_headers).status_code == 204
    second = gateway.request("POST", "/api/reservations", json={**slot, "title": "Standup"}, headers=bob_headers)
    assert second.status_code == 201

    window = {"from": (start - timedelta(hours=1)).isoformat(), "to": (start + timedelta(hours=2)).isoformat()}
    schedule = gateway.request("GET", f"/api/reservations/room/{room['id']}", params=window, headers=alice_headers).json()
    assert [r["id"] for r in schedule["items"]] == [second.json()["id"]]

    wait_until(lambda: len(mails(platform, alice["email"])) >= 2, timeout=30, message="alice's two e-mails")
    wait_until(lambda: mails(platform, bob["email"]), timeout=30, message="bob's confirmation")
    subjects = [m.splitlines()[0] for m in mails(platform, alice["email"])]
    assert any(s.startswith("Booked: Design review") for s in subjects) and any(
        s.startswith("Cancelled: Design review") for s in subjects
    )
    assert "Story Room (Floor 2)" in mails(platform, bob["email"])[0] and "09:00" in mails(platform, bob["email"])[0]

    # The room goes: Bob's booking is cancelled and he is told why.
    assert gateway.request("DELETE", f"/api/rooms/{room['id']}", headers=admin).status_code == 204
    wait_until(
        lambda: (
            gateway.request("GET", f"/api/reservations/{second.json()['id']}", headers=bob_headers).json()["status"]
            == "cancelled"
        ),
        timeout=30,
        message="the deleted room's booking to be cancelled",
    )
    wait_until(
        lambda: any("room was removed" in m for m in mails(platform, bob["email"])),
        timeout=30,
        message="bob's cancellation e-mail",
    )
