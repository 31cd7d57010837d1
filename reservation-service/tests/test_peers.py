"""Validation across services over REST: rooms unknown to the read model are asked of the real room-service."""

from __future__ import annotations

import requests
from conftest import booking
from sqlalchemy import delete, select

from app.models import RoomReplica, UserReplica
from servicekit.db import db


def _room(room_service: str, admin: dict, **fields) -> dict:
    body = {"name": f"REST room {fields.pop('tag', '')}{id(fields)}", "capacity": 3, **fields}
    response = requests.post(f"{room_service}/api/rooms", json=body, headers=admin, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_room_only_room_service_knows_is_checked_over_rest_and_remembered(app, rest_client, room_service, people):
    _, admin = people.admin()
    _, headers = people.user()
    room = _room(room_service, admin, tag="a")
    with app.app_context():
        assert db.session.get(RoomReplica, room["id"]) is None
    response = rest_client.post("/api/reservations", json=booking(room["id"]), headers=headers)
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        replica = db.session.execute(select(RoomReplica).where(RoomReplica.room_id == room["id"])).scalar_one()
        assert replica.capacity == 3 and replica.name == room["name"]


def test_rooms_room_service_reports_deleted_inactive_missing_or_too_small_are_422(rest_client, room_service, people):
    _, admin = people.admin()
    _, headers = people.user()
    gone = _room(room_service, admin, tag="b")
    requests.delete(f"{room_service}/api/rooms/{gone['id']}", headers=admin, timeout=10)
    closed = _room(room_service, admin, tag="c", is_active=False)
    small = _room(room_service, admin, tag="d", capacity=1)
    for room_id in (gone["id"], closed["id"], 987654320):
        response = rest_client.post("/api/reservations", json=booking(room_id), headers=headers)
        assert response.status_code == 422, (room_id, response.get_json())
        assert response.get_json()["errors"][0]["field"] == "room_id"
    crowded = rest_client.post(
        "/api/reservations", json=booking(small["id"], attendees=["a@example.com", "b@example.com"]), headers=headers
    )
    assert crowded.status_code == 422 and crowded.get_json()["errors"][0]["field"] == "attendees"


def test_a_room_learnt_over_rest_brings_its_zone_and_policy_and_they_are_enforced(app, rest_client, room_service, people):
    _, admin = people.admin()
    _, headers = people.user()
    room = _room(
        room_service,
        admin,
        tag="e",
        timezone="Asia/Kolkata",
        equipment=["Screen"],
        booking_policy={"min_minutes": 45, "open_hours": {"mon": [["09:00", "17:30"]]}},
    )
    response = rest_client.post("/api/reservations", json=booking(room["id"], minutes=30), headers=headers)
    assert response.status_code == 422
    assert {e["rule"] for e in response.get_json()["errors"]} >= {"booking_policy.min_minutes"}
    with app.app_context():
        replica = db.session.get(RoomReplica, room["id"])
        assert replica.timezone == "Asia/Kolkata" and replica.equipment == ["screen"]
        assert replica.booking_policy == room["booking_policy"]


def test_a_rooms_schedule_read_before_the_read_model_knows_the_room_asks_room_service_and_remembers_it(
    app, rest_client, room_service, people
):
    """A GET that fills the read model: the request itself runs without a transaction and may not write, the
    remembered room is written in a transaction of its own."""
    _, admin = people.admin()
    _, headers = people.user()
    room = _room(room_service, admin, tag="f")
    response = rest_client.get(f"/api/reservations/room/{room['id']}", headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"room_id": room["id"], "items": []}
    with app.app_context():
        assert db.session.get(RoomReplica, room["id"]).name == room["name"]
    missing = rest_client.get("/api/reservations/room/987654321", headers=headers)
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"


def test_a_booking_by_a_user_the_read_model_does_not_know_asks_user_service_and_books(app, client, people, rooms):
    """The owner unknown here (their user.registered not consumed yet): the booking's locks are let go, user-service
    is asked, the user remembered, the locks taken again, and the booking made."""
    user, headers = people.user()
    room = rooms.create()
    with app.app_context():
        db.session.execute(delete(UserReplica).where(UserReplica.user_id == user["id"]))
        db.session.commit()
    response = client.post("/api/reservations", json=booking(room["id"], 5), headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["user_id"] == user["id"]
    with app.app_context():
        replica = db.session.get(UserReplica, user["id"])
        assert replica is not None and replica.email == user["email"]
    # The locks of the first attempt were released: the next booking of the same room and user goes through.
    assert client.post("/api/reservations", json=booking(room["id"], 7), headers=headers).status_code == 201


def test_free_busy_asks_room_service_of_a_room_not_heard_of_yet_and_a_missing_room_is_422(rest_client, room_service, people):
    _, admin = people.admin()
    _, headers = people.user()
    room = _room(
        room_service, admin, tag="fb", timezone="Europe/Berlin", booking_policy={"open_hours": {"mon": [["09:00", "17:00"]]}}
    )
    window = [("from", "2030-01-07T00:00:00Z"), ("to", "2030-01-08T00:00:00Z")]  # a Monday (UTC+1)
    response = rest_client.get("/api/availability/free-busy", query_string=[("room_id", room["id"]), *window], headers=headers)
    assert response.status_code == 200, response.get_json()
    (answer,) = response.get_json()["rooms"]
    assert answer["timezone"] == "Europe/Berlin"
    assert [(b["start_time"], b["end_time"], b["kind"]) for b in answer["busy"]] == [
        ("2030-01-07T00:00:00+00:00", "2030-01-07T08:00:00+00:00", "closed"),
        ("2030-01-07T16:00:00+00:00", "2030-01-08T00:00:00+00:00", "closed"),
    ]
    missing = rest_client.get("/api/availability/free-busy", query_string=[("room_id", 987654321), *window], headers=headers)
    assert missing.status_code == 422 and missing.get_json()["errors"][0]["field"] == "room_id"
    many = [("room_id", 987654300 + n) for n in range(4)]  # more unknown rooms than are asked about: 422 at once
    assert rest_client.get("/api/availability/free-busy", query_string=[*many, *window], headers=headers).status_code == 422


def test_free_busy_shows_an_inactive_room_closed_for_the_whole_window(rest_client, client, room_service, people, rooms):
    _, admin = people.admin()
    _, headers = people.user()
    window = [("from", "2030-01-07T10:00:00Z"), ("to", "2030-01-07T12:00:00Z")]
    closed_there = _room(room_service, admin, tag="fbi", is_active=False)  # learnt over REST
    closed_here = rooms.create(is_active=False)  # learnt from room-events
    for app_client, room in ((rest_client, closed_there), (client, closed_here)):
        response = app_client.get("/api/availability/free-busy", query_string=[("room_id", room["id"]), *window], headers=headers)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["rooms"][0]["busy"] == [
            {"start_time": "2030-01-07T10:00:00+00:00", "end_time": "2030-01-07T12:00:00+00:00", "kind": "closed"}
        ]
