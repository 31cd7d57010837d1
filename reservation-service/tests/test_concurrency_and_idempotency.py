"""No double booking whatever the concurrency, and Idempotency-Key on create."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

import psycopg
import requests
from conftest import against_a_rival_booking, booking
from flask_migrate import upgrade
from psycopg import sql
from sqlalchemy import text

from app import create_app
from app.models import Reservation, RoomReplica, UserReplica
from servicekit.db import db
from servicekit.testing import count_rows, libpq_url, send_blocked_by, wait_until

THREADS = 32


def test_dozens_of_concurrent_overlapping_bookings_exactly_one_wins(base_url, app, people, rooms):
    room = rooms.create()
    bookers = [people.user()[1] for _ in range(8)]
    barrier = threading.Barrier(THREADS)

    def attempt(n: int) -> int:
        body = booking(room["id"], hours_ahead=(n % 4) * 0.25, minutes=90)  # all overlap each other
        barrier.wait()
        return requests.post(f"{base_url}/api/reservations", json=body, headers=bookers[n % len(bookers)], timeout=30).status_code

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(attempt, range(THREADS)))
    assert statuses.count(201) == 1
    assert statuses.count(409) == THREADS - 1  # no 5xx, no other answer
    with app.app_context():
        overlapping_pairs = db.session.execute(
            text(
                "SELECT count(*) FROM reservations a JOIN reservations b ON a.id < b.id AND a.room_id = b.room_id "
                "AND a.during && b.during WHERE a.status = 'confirmed' AND b.status = 'confirmed'"
            )
        ).scalar_one()
        assert overlapping_pairs == 0


def test_a_race_lost_at_the_database_is_the_same_409_with_its_conflict(config, client, app, people, rooms):
    """Another transaction inserts an overlapping booking and commits after our check ran: the constraint catches it."""
    user, headers = people.user()
    room = rooms.create()
    body = booking(room["id"])
    rival_id, response = against_a_rival_booking(
        config,
        (room["id"], user["id"], body["start_time"], body["end_time"]),
        lambda: client.post("/api/reservations", json=body, headers=headers),
        "our insert to wait on the rival transaction",
    )
    assert response.status_code == 409
    assert [c["reservation_id"] for c in response.get_json()["conflicts"]] == [rival_id]


def test_a_booking_aborted_to_break_a_deadlock_looks_again_and_ends_in_the_409(config, fresh_database, people):
    """The request's row waits on a rival's first row; the rival then inserts a second row that overlaps the
    request's row, and waits on it: a deadlock. PostgreSQL aborts the request (its deadlock check runs first: the
    rival waits with a longer deadlock_timeout). The request looks again under fresh locks and answers the 409
    with both rival bookings, not a 503. On its own database, whose deadlock_timeout leaves the test time to close
    the cycle before the request's one check runs."""
    user, headers = people.user()
    url = fresh_database("deadlock")
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:  # (below the service's statement timeout)
        admin.execute(sql.SQL("ALTER DATABASE {} SET deadlock_timeout = '2s'").format(sql.Identifier(url.rsplit("/", 1)[1])))
    own_app = create_app(replace(config, database_url=url))
    with own_app.app_context():
        upgrade()
        db.session.add(RoomReplica(room_id=9, name="Hopper", capacity=4, location="Floor 2", is_active=True))
        db.session.add(UserReplica(user_id=user["id"], email=user["email"], full_name="Booker", is_active=True))
        db.session.commit()
    body = booking(9, minutes=60)
    start, end = datetime.fromisoformat(body["start_time"]), datetime.fromisoformat(body["end_time"])
    insert = (
        "INSERT INTO reservations (room_id, user_id, title, start_time, end_time) VALUES (9, %s, 'Rival', %s, %s) RETURNING id"
    )
    with psycopg.connect(libpq_url(url)) as rival, psycopg.connect(libpq_url(url), autocommit=True) as probe:

        def deadlocks() -> int:
            return probe.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]

        before = deadlocks()
        rival.execute("SET deadlock_timeout = '60s'")
        first = rival.execute(insert, (user["id"], start, start + (end - start) / 2)).fetchone()[0]
        request = send_blocked_by(
            url,
            rival,
            lambda: own_app.test_client().post("/api/reservations", json=body, headers=headers),
            "the request to wait on the rival's first row",
        )
        # Waits on the request's row until PostgreSQL aborts the request; then the rival commits.
        second = rival.execute(insert, (user["id"], start + (end - start) / 2, end)).fetchone()[0]
        rival.commit()
        response = request.response(30)
        assert response.status_code == 409, response.get_json()
        assert sorted(c["reservation_id"] for c in response.get_json()["conflicts"]) == sorted([first, second])
        wait_until(lambda: deadlocks() > before, message="PostgreSQL to count the deadlock it broke")


def test_a_retry_with_the_same_key_and_body_replays_the_first_answer_and_books_nothing_new(client, app, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    body = booking(room["id"])
    first = client.post("/api/reservations", json=body, headers={**headers, "Idempotency-Key": "order-1"})
    second = client.post("/api/reservations", json=body, headers={**headers, "Idempotency-Key": "order-1"})
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert count_rows(app, Reservation, Reservation.room_id == room["id"]) == 1


def test_the_same_key_with_another_body_is_422(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    client.post("/api/reservations", json=booking(room["id"], 0), headers={**headers, "Idempotency-Key": "k"})
    response = client.post("/api/reservations", json=booking(room["id"], 5), headers={**headers, "Idempotency-Key": "k"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "Idempotency-Key"


def test_a_key_still_in_flight_is_409(client, app, people, rooms):
    user, headers = people.user()
    room = rooms.create()
    body = booking(room["id"])
    from app import idempotency

    with app.app_context():
        from datetime import timedelta

        assert idempotency.begin(user["id"], "busy", idempotency.request_hash(body), timedelta(hours=1)) is None
    response = client.post("/api/reservations", json=body, headers={**headers, "Idempotency-Key": "busy"})
    assert response.status_code == 409
    assert "conflicts" not in response.get_json()


def test_keys_belong_to_one_user(client, people, rooms):
    _, alice = people.user()
    _, bob = people.user()
    room = rooms.create()
    first = client.post("/api/reservations", json=booking(room["id"], 0), headers={**alice, "Idempotency-Key": "same"})
    second = client.post("/api/reservations", json=booking(room["id"], 2), headers={**bob, "Idempotency-Key": "same"})
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] != second.get_json()["id"]


def test_a_client_error_is_the_answer_to_its_key(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    taken = booking(room["id"])
    client.post("/api/reservations", json=taken, headers=headers)
    first = client.post("/api/reservations", json=taken, headers={**headers, "Idempotency-Key": "clash"})
    again = client.post("/api/reservations", json=taken, headers={**headers, "Idempotency-Key": "clash"})
    assert first.status_code == again.status_code == 409
    assert first.get_json() == again.get_json()
    assert again.content_type == first.content_type == "application/problem+json"


def test_an_invalid_key_is_422(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    response = client.post("/api/reservations", json=booking(room["id"]), headers={**headers, "Idempotency-Key": "x" * 300})
    assert response.status_code == 422
