"""Part 2 of API.md, "Blackouts": admins close rooms for a time; overlapping bookings are cancelled
(event and e-mail), new ones refused, and no confirmed booking ever overlaps a blackout."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import psycopg
import pytest
import requests
from conftest import booking, slot
from test_events_and_mail import mails_to

from app import locks
from servicekit.db import db
from servicekit.testing import libpq_url, send_blocked_by, wait_until

PROBLEM = "application/problem+json"
OVERLAPS = (
    "SELECT count(*) FROM reservations r JOIN blackouts b ON (b.room_id IS NULL OR b.room_id = r.room_id) "
    "AND r.during && b.during WHERE r.status = 'confirmed'"
)


def blackout(room_id: int | None, hours_ahead: float = 0, minutes: int = 60, reason: str = "Maintenance") -> dict:
    start, end = slot(hours_ahead, minutes)
    return {"room_id": room_id, "start_time": start, "end_time": end, "reason": reason}


def overlaps_in_tables(app) -> int:
    from sqlalchemy import text

    with app.app_context():
        count = db.session.execute(text(OVERLAPS)).scalar_one()
        db.session.commit()
        return count


def test_an_admin_creates_a_blackout_and_anyone_reads_it(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    room = rooms.create()
    body = blackout(room["id"], 0, 120, reason="Carpet cleaning")
    response = client.post("/api/blackouts", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert set(created) == {"id", "room_id", "start_time", "end_time", "reason"}
    assert created["room_id"] == room["id"] and created["reason"] == "Carpet cleaning"
    assert datetime.fromisoformat(created["start_time"]) == datetime.fromisoformat(body["start_time"])
    assert response.headers["Location"] == f"/api/blackouts/{created['id']}"
    page = client.get("/api/blackouts", headers=user).get_json()
    assert page == {"items": [created], "page": 1, "per_page": 20, "total": 1, "total_is_estimate": False}


def test_only_admins_write_blackouts(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    room = rooms.create()
    assert client.post("/api/blackouts", json=blackout(room["id"]), headers=user).status_code == 403
    created = client.post("/api/blackouts", json=blackout(room["id"]), headers=admin).get_json()
    assert client.delete(f"/api/blackouts/{created['id']}", headers=user).status_code == 403
    assert client.get("/api/blackouts").status_code == 401


def test_list_filters_by_room_including_every_room_blackouts_and_by_window(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    room, other = rooms.create(), rooms.create()
    mine = client.post("/api/blackouts", json=blackout(room["id"], 0), headers=admin).get_json()
    theirs = client.post("/api/blackouts", json=blackout(other["id"], 0), headers=admin).get_json()
    everywhere = client.post("/api/blackouts", json=blackout(None, 24), headers=admin).get_json()
    assert everywhere["room_id"] is None

    def ids(**params) -> list[int]:
        response = client.get("/api/blackouts", query_string=params, headers=user)
        assert response.status_code == 200, response.get_json()
        return [b["id"] for b in response.get_json()["items"]]

    assert ids() == [mine["id"], theirs["id"], everywhere["id"]]
    assert ids(room_id=room["id"]) == [mine["id"], everywhere["id"]]
    assert ids(**{"from": slot(12)[0]}) == [everywhere["id"]]
    assert ids(to=slot(12)[0]) == [mine["id"], theirs["id"]]
    assert ids(per_page=1, page=3) == [everywhere["id"]]


def test_deleting_a_blackout_frees_the_time_again(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    room = rooms.create()
    created = client.post("/api/blackouts", json=blackout(room["id"]), headers=admin).get_json()
    assert client.post("/api/reservations", json=booking(room["id"]), headers=user).status_code == 409
    assert client.delete(f"/api/blackouts/{created['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/blackouts/{created['id']}", headers=admin).status_code == 404
    assert client.post("/api/reservations", json=booking(room["id"]), headers=user).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end_time": slot(-1)[0]}, "end_time"),
        ({"start_time": "2030-03-01T09:00:00"}, "start_time"),
        ({"reason": ""}, "reason"),
        ({"reason": None}, "reason"),
        ({"room_id": 987654321}, "room_id"),  # never announced: room-service is asked, and is away here → 503
        ({"room_id": "1"}, "room_id"),
        ({"colour": "red"}, "colour"),
    ],
    ids=["end-before-start", "naive-time", "empty-reason", "null-reason", "unknown-room", "string-room", "unknown-field"],
)
def test_invalid_blackouts_are_422_naming_the_field(client, people, rooms, change, field):
    _, admin = people.admin()
    room = rooms.create()
    response = client.post("/api/blackouts", json={**blackout(room["id"]), **change}, headers=admin)
    if field == "room_id" and change["room_id"] == 987654321:
        assert response.status_code == 503
        return
    assert response.status_code == 422, response.get_json()
    assert response.content_type == PROBLEM
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_a_blackout_of_a_deleted_room_is_422(client, people, rooms):
    _, admin = people.admin()
    room = rooms.create()
    rooms.publish("room.deleted", room)
    wait_until(
        lambda: client.post("/api/blackouts", json=blackout(room["id"]), headers=admin).status_code == 422,
        message="the deleted room to reach the read model",
    )


def test_booking_into_a_blackout_is_409_listing_the_blackouts(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    room = rooms.create()
    closed = client.post("/api/blackouts", json=blackout(room["id"], 1, 60, reason="Fire drill"), headers=admin).get_json()
    everywhere = client.post("/api/blackouts", json=blackout(None, 2, 30, reason="Power cut"), headers=admin).get_json()
    response = client.post("/api/reservations", json=booking(room["id"], 0, 240), headers=user)
    assert response.status_code == 409 and response.content_type == PROBLEM
    problem = response.get_json()
    assert "conflicts" not in problem
    assert problem["blackouts"] == [
        {"blackout_id": b["id"], "start_time": b["start_time"], "end_time": b["end_time"], "reason": b["reason"]}
        for b in (closed, everywhere)
    ]
    assert client.post("/api/reservations", json=booking(room["id"], 0, 60), headers=user).status_code == 201  # adjacent
    other_room = rooms.create()
    blocked = client.post("/api/reservations", json=booking(other_room["id"], 2, 60), headers=user)
    assert blocked.status_code == 409 and [b["blackout_id"] for b in blocked.get_json()["blackouts"]] == [everywhere["id"]]


def test_moving_a_booking_into_a_blackout_is_409_and_changes_nothing(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    room = rooms.create()
    mine = client.post("/api/reservations", json=booking(room["id"], 0), headers=user).get_json()
    client.post("/api/blackouts", json=blackout(room["id"], 3), headers=admin)
    start, end = slot(3)
    response = client.put(f"/api/reservations/{mine['id']}", json={"start_time": start, "end_time": end}, headers=user)
    assert response.status_code == 409 and response.get_json()["blackouts"]
    assert client.get(f"/api/reservations/{mine['id']}", headers=user).get_json() == mine


def test_a_blackout_cancels_overlapping_bookings_with_events_and_mail(client, app, people, rooms, topics, infrastructure):
    _, admin = people.admin()
    alice, alice_headers = people.user()
    _, bob_headers = people.user()
    room, other_room = rooms.create(), rooms.create()
    hit = client.post("/api/reservations", json=booking(room["id"], 0), headers=alice_headers).get_json()
    also_hit = client.post("/api/reservations", json=booking(room["id"], 1, 30), headers=bob_headers).get_json()
    before = client.post("/api/reservations", json=booking(room["id"], -1), headers=alice_headers).get_json()  # ends at its start
    elsewhere = client.post("/api/reservations", json=booking(other_room["id"], 0), headers=alice_headers).get_json()
    response = client.post("/api/blackouts", json=blackout(room["id"], 0, 120, reason="Burst pipe"), headers=admin)
    assert response.status_code == 201
    closed = response.get_json()

    def status(reservation):
        return client.get(f"/api/reservations/{reservation['id']}", headers=admin).get_json()["status"]

    assert [status(r) for r in (hit, also_hit, before, elsewhere)] == ["cancelled", "cancelled", "confirmed", "confirmed"]
    events = topics.collect(
        "reservation-events",
        lambda key, value: key in (str(hit["id"]), str(also_hit["id"])) and value["event_type"] == "reservation.cancelled",
        expect=2,
        settle=1.0,
    )
    assert sorted(e["data"]["id"] for e in events) == [hit["id"], also_hit["id"]]
    assert all(e["data"]["reason"] == "blackout" and e["data"]["blackout_id"] == closed["id"] for e in events)
    assert all(e["data"]["status"] == "cancelled" for e in events)
    cancelled = wait_until(
        lambda: [
            m
            for m in mails_to(infrastructure.mail_dir, alice["email"])
            if m["Subject"].startswith("Cancelled") and f"#{hit['id']}" in m.get_body(preferencelist=("plain",)).get_content()
        ],
        message="the cancellation e-mail",
    )
    text = cancelled[0].get_body(preferencelist=("plain",)).get_content()
    assert room["name"] in text
    assert "The room is not available at that time: Burst pipe." in text and "organiser" not in text
    assert all(e["data"]["blackout_reason"] == "Burst pipe" for e in events)
    assert overlaps_in_tables(app) == 0


def test_a_blackout_of_every_room_cancels_bookings_in_all_of_them(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    first, second = rooms.create(), rooms.create()
    booked = [client.post("/api/reservations", json=booking(r["id"], 5), headers=user).get_json() for r in (first, second)]
    assert client.post("/api/blackouts", json=blackout(None, 5, 30, reason="Building closed"), headers=admin).status_code == 201
    assert [client.get(f"/api/reservations/{b['id']}", headers=user).get_json()["status"] for b in booked] == [
        "cancelled",
        "cancelled",
    ]


def test_a_booking_committing_while_a_blackout_is_created_is_cancelled_by_it(config, app, client, people, rooms):
    """A booking transaction holds the room's lock and commits its row only once the blackout is waiting for it."""
    user, _ = people.user()
    _, admin = people.admin()
    room = rooms.create()
    start, end = slot(0)
    with psycopg.connect(libpq_url(config.database_url)) as booking_tx:
        booking_tx.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", (locks.EVERY_ROOM,))
        booking_tx.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", (locks.ROOM, room["id"]))
        creating = send_blocked_by(
            config.database_url,
            booking_tx,
            lambda: client.post("/api/blackouts", json=blackout(room["id"]), headers=admin),
            "the blackout to wait for the booking in flight",
        )
        booking_id = booking_tx.execute(
            "INSERT INTO reservations (room_id, user_id, title, start_time, end_time) VALUES (%s, %s, 'Late', %s, %s) RETURNING id",
            (room["id"], user["id"], start, end),
        ).fetchone()[0]
        booking_tx.commit()
    assert creating.response(10).status_code == 201
    assert client.get(f"/api/reservations/{booking_id}", headers=admin).get_json()["status"] == "cancelled"
    assert overlaps_in_tables(app) == 0


def test_a_booking_waiting_on_a_blackout_in_flight_is_409_once_it_commits(config, app, client, people, rooms):
    """The blackout transaction holds the room's lock; the booking waits, then sees the committed blackout."""
    user, headers = people.user()
    room = rooms.create()
    start, end = slot(0)
    with psycopg.connect(libpq_url(config.database_url)) as blackout_tx:
        blackout_tx.execute("SELECT pg_advisory_xact_lock(%s, %s)", (locks.ROOM, room["id"]))
        blackout_id = blackout_tx.execute(
            "INSERT INTO blackouts (room_id, start_time, end_time, reason, created_by) VALUES (%s, %s, %s, 'Drill', %s) RETURNING id",
            (room["id"], start, end, user["id"]),
        ).fetchone()[0]
        request = send_blocked_by(
            config.database_url,
            blackout_tx,
            lambda: client.post("/api/reservations", json=booking(room["id"]), headers=headers),
            "the booking to wait for the blackout in flight",
        )
        blackout_tx.commit()
    response = request.response(10)
    assert response.status_code == 409
    assert [b["blackout_id"] for b in response.get_json()["blackouts"]] == [blackout_id]
    assert overlaps_in_tables(app) == 0


THREADS = 24


@pytest.mark.parametrize("every_room", [False, True], ids=["room", "every-room"])
def test_many_bookings_racing_a_blackout_never_leave_an_overlap(base_url, app, people, rooms, every_room):
    room = rooms.create()
    _, admin = people.admin()
    bookers = [people.user()[1] for _ in range(6)]
    barrier = threading.Barrier(THREADS + 1)

    def book(n: int) -> int:
        body = booking(room["id"], hours_ahead=n * 0.25, minutes=15)  # distinct slots, all inside the blackout
        barrier.wait()
        return requests.post(f"{base_url}/api/reservations", json=body, headers=bookers[n % len(bookers)], timeout=30).status_code

    def close() -> int:
        barrier.wait()
        body = blackout(None if every_room else room["id"], 0, THREADS * 15 + 60)
        return requests.post(f"{base_url}/api/blackouts", json=body, headers=admin, timeout=30).status_code

    with ThreadPoolExecutor(THREADS + 1) as pool:
        closing = pool.submit(close)
        statuses = list(pool.map(book, range(THREADS)))
    assert closing.result() == 201
    assert set(statuses) <= {201, 409}  # no 5xx, no other answer
    assert overlaps_in_tables(app) == 0
