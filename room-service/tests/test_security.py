"""Security hardening seen from room-service (issue 9): role changes revoke older tokens here within
seconds, and single-line room fields refuse control characters."""

from __future__ import annotations

import pytest
import requests
from conftest import room_body

from servicekit.testing import wait_until


def test_a_demoted_admins_older_token_stops_working_here_within_seconds(client, people):
    boss = people.admin()[1]
    deputy, _ = people.user()
    promoted = requests.put(f"{people.url}/api/users/{deputy['id']}", json={"role": "admin"}, headers=boss, timeout=10)
    assert promoted.status_code == 200
    deputy_admin = people.login(deputy["email"], "long enough")
    assert client.post("/api/rooms", json=room_body(), headers=deputy_admin).status_code == 201

    demoted = requests.put(f"{people.url}/api/users/{deputy['id']}", json={"role": "user"}, headers=boss, timeout=10)
    assert demoted.status_code == 200
    wait_until(
        lambda: client.get("/api/rooms", headers=deputy_admin).status_code == 401,
        timeout=10,
        message="the demoted admin's token to be refused",
    )
    assert client.post("/api/rooms", json=room_body(), headers=deputy_admin).status_code == 401
    fresh = people.login(deputy["email"], "long enough")  # a token issued after the change works, as a user
    assert client.get("/api/rooms", headers=fresh).status_code == 200
    assert client.post("/api/rooms", json=room_body(), headers=fresh).status_code == 403


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Room\nB"),
        ("name", "Room\x07"),
        ("location", "Floor 3\r\nEast"),
        ("location", "Floor\x1b[2J"),
        ("equipment", ["projector\nscreen"]),
    ],
)
def test_control_characters_in_room_fields_are_422_naming_the_field(client, admin, make_room, field, value):
    response = client.post("/api/rooms", json=room_body(**{field: value}), headers=admin)
    assert response.status_code == 422
    assert [e["field"].split(".")[0] for e in response.get_json()["errors"]] == [field]
    room = make_room()
    response = client.put(f"/api/rooms/{room['id']}", json={field: value}, headers=admin)
    assert response.status_code == 422
    assert [e["field"].split(".")[0] for e in response.get_json()["errors"]] == [field]
