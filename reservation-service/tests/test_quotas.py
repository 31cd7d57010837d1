"""Fair use: MAX_FUTURE_BOOKINGS, MAX_HOURS_PER_WEEK (ISO weeks of the room's zone), admins exempt,
race-free; MAX_ATTENDEES. Served by a reservation-service with small limits on the same database."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from wsgiref.simple_server import make_server
from zoneinfo import ZoneInfo

import pytest
import requests
from conftest import _Quiet, _ThreadingServer, booking
from test_room_policies import next_weekday

from app import create_app
from config import ReservationServiceConfig
from servicekit.config import ConfigError

QUOTA = "/problems/quota-exceeded"


@pytest.fixture(scope="session")
def limited(config, app):
    """reservation-service with MAX_FUTURE_BOOKINGS=3, MAX_HOURS_PER_WEEK=4, MAX_ATTENDEES=3 (no background workers:
    the session's app relays its events and keeps the read models)."""
    limited_app = create_app(
        replace(config, max_future_bookings=3, max_hours_per_week=4, max_attendees=3, background_workers=False)
    )
    server = make_server("127.0.0.1", 0, limited_app, server_class=_ThreadingServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield limited_app.test_client(), f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def at(day: date, hours: float, zone: str = "Europe/Berlin") -> str:
    return (datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)) + timedelta(hours=hours)).isoformat()


def test_the_booking_beyond_max_future_bookings_is_409_saying_which_limit(limited, people, rooms):
    client, _ = limited
    _, headers = people.user()
    room = rooms.create()
    kept = [client.post("/api/reservations", json=booking(room["id"], n), headers=headers) for n in range(3)]
    assert [r.status_code for r in kept] == [201, 201, 201]
    response = client.post("/api/reservations", json=booking(room["id"], 24), headers=headers)
    assert response.status_code == 409 and response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == QUOTA
    assert (problem["limit"], problem["maximum"], problem["current"]) == ("MAX_FUTURE_BOOKINGS", 3, 3)
    assert "3 upcoming bookings" in problem["detail"] and "conflicts" not in problem
    client.delete(f"/api/reservations/{kept[0].get_json()['id']}", headers=headers)
    assert client.post("/api/reservations", json=booking(room["id"], 24), headers=headers).status_code == 201


def test_the_refusal_counts_every_upcoming_booking_though_the_check_stops_at_the_limit(limited, client, people, rooms):
    """The check counts no further than MAX_FUTURE_BOOKINGS; a user holding more (booked while the limit was
    higher: here, through the session's app with the default of 50) is told how many they really hold."""
    limited_client, _ = limited
    _, headers = people.user()
    room = rooms.create()
    held = [client.post("/api/reservations", json=booking(room["id"], n * 2), headers=headers) for n in range(5)]
    assert [r.status_code for r in held] == [201] * 5
    client.delete(f"/api/reservations/{held[0].get_json()['id']}", headers=headers)  # cancelled: not counted
    response = limited_client.post("/api/reservations", json=booking(room["id"], 30), headers=headers)
    assert response.status_code == 409
    problem = response.get_json()
    assert (problem["limit"], problem["maximum"], problem["current"]) == ("MAX_FUTURE_BOOKINGS", 3, 4)
    assert "4 upcoming bookings" in problem["detail"]


def test_admins_are_exempt_from_the_limits(limited, people, rooms):
    client, _ = limited
    _, admin = people.admin()
    room = rooms.create()
    statuses = [
        client.post("/api/reservations", json=booking(room["id"], n * 3, 120), headers=admin).status_code for n in range(5)
    ]
    assert statuses == [201] * 5


def test_hours_per_iso_week_count_in_the_rooms_zone(limited, people, rooms):
    """Monday 00:00-01:00 in Berlin is still Sunday in UTC: it belongs to the new week of the room's zone."""
    client, _ = limited
    _, headers = people.user()
    room = rooms.create(timezone="Europe/Berlin")
    monday = next_weekday(0)
    sunday = monday - timedelta(days=1)

    def book(day: date, start: float, hours: float):
        body = {"room_id": room["id"], "title": "Work", "start_time": at(day, start), "end_time": at(day, start + hours)}
        return client.post("/api/reservations", json=body, headers=headers)

    assert book(sunday, 18, 3.5).status_code == 201  # 3.5 h in the week ending on Sunday
    assert book(monday, 0, 1).status_code == 201  # the next week in Berlin (would be 4.5 h of Sunday's week in UTC)
    refused = book(sunday, 10, 0.75)
    assert refused.status_code == 409, refused.get_json()
    problem = refused.get_json()
    year, week, _ = sunday.isocalendar()
    assert problem["type"] == QUOTA and problem["limit"] == "MAX_HOURS_PER_WEEK"
    assert (problem["maximum"], problem["current"], problem["requested"]) == (4, 3.5, 0.75)
    assert problem["week"] == f"{year}-W{week:02d}" and "Europe/Berlin" in problem["detail"]


def test_a_booking_across_two_weeks_counts_its_hours_in_each(limited, people, rooms):
    client, _ = limited
    _, headers = people.user()
    room = rooms.create(timezone="Europe/Berlin")
    monday = next_weekday(0, weeks_ahead=2)
    sunday = monday - timedelta(days=1)
    first = {"room_id": room["id"], "title": "A", "start_time": at(monday, 1), "end_time": at(monday, 4.5)}
    assert client.post("/api/reservations", json=first, headers=headers).status_code == 201  # 3.5 h in Monday's week
    across = {"room_id": room["id"], "title": "B", "start_time": at(sunday, 23), "end_time": at(monday, 1)}
    response = client.post("/api/reservations", json=across, headers=headers)  # 1 h each side: 4.5 h in Monday's week
    assert response.status_code == 409 and response.get_json()["requested"] == 1


def test_moving_a_booking_counts_its_new_hours_not_its_old_ones_twice(limited, people, rooms):
    client, _ = limited
    _, headers = people.user()
    room = rooms.create(timezone="UTC")
    day = next_weekday(2, weeks_ahead=3)
    first = {"room_id": room["id"], "title": "A", "start_time": at(day, 8, "UTC"), "end_time": at(day, 11, "UTC")}
    created = client.post("/api/reservations", json=first, headers=headers).get_json()
    later = {"start_time": at(day, 12, "UTC"), "end_time": at(day, 16, "UTC")}  # 4 h: the whole allowance, itself excluded
    assert client.put(f"/api/reservations/{created['id']}", json=later, headers=headers).status_code == 200
    longer = {"end_time": at(day, 16.5, "UTC")}
    response = client.put(f"/api/reservations/{created['id']}", json=longer, headers=headers)
    assert response.status_code == 409 and response.get_json()["limit"] == "MAX_HOURS_PER_WEEK"


def test_parallel_requests_cannot_both_take_the_last_booking(limited, people, rooms):
    client, url = limited
    _, headers = people.user()
    room = rooms.create()
    for n in range(2):
        assert client.post("/api/reservations", json=booking(room["id"], n), headers=headers).status_code == 201
    threads = 12
    barrier = threading.Barrier(threads)

    def attempt(n: int) -> int:
        body = booking(room["id"], 10 + n, 15)  # distinct, free slots: only the quota can refuse them
        barrier.wait()
        return requests.post(f"{url}/api/reservations", json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(attempt, range(threads)))
    assert statuses.count(201) == 1 and statuses.count(409) == threads - 1
    assert client.get("/api/reservations?status=confirmed", headers=headers).get_json()["total"] == 3


def test_parallel_requests_cannot_both_take_the_last_hour_of_the_week(limited, people, rooms):
    client, url = limited
    _, headers = people.user()
    room = rooms.create(timezone="UTC")
    day = next_weekday(3, weeks_ahead=4)
    threads = 8
    barrier = threading.Barrier(threads)

    def attempt(n: int) -> int:
        body = {"room_id": room["id"], "title": "T", "start_time": at(day, n * 3, "UTC"), "end_time": at(day, n * 3 + 3, "UTC")}
        barrier.wait()
        return requests.post(f"{url}/api/reservations", json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(attempt, range(threads)))
    assert statuses.count(201) == 1  # 3 h each: a second one would make 6 h of the 4 allowed


def test_attendees_beyond_max_attendees_are_422_and_duplicates_count_once(limited, people, rooms):
    client, _ = limited
    _, headers = people.user()
    room = rooms.create(capacity=10)
    four = [f"p{n}@example.com" for n in range(4)]
    response = client.post("/api/reservations", json=booking(room["id"], attendees=four), headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "attendees", "message": "At most 3 attendees; 4 were given."}]
    twice = ["A@example.com", "a@example.com", "b@example.com", "c@example.com", "C@Example.com"]
    created = client.post("/api/reservations", json=booking(room["id"], attendees=twice), headers=headers)
    assert created.status_code == 201
    assert created.get_json()["attendees"] == ["a@example.com", "b@example.com", "c@example.com"]


def test_the_limits_come_from_the_environment_and_are_validated(config):
    base = {
        "DATABASE_URL": config.database_url,
        "JWKS_URL": config.jwks_url,
        "USER_SERVICE_URL": config.user_service_url,
        "ROOM_SERVICE_URL": config.room_service_url,
    }
    defaults = ReservationServiceConfig.from_env(base)
    assert (defaults.max_future_bookings, defaults.max_hours_per_week, defaults.max_attendees) == (50, 40, 100)
    custom = ReservationServiceConfig.from_env({**base, "MAX_FUTURE_BOOKINGS": "5", "MAX_HOURS_PER_WEEK": "10"})
    assert (custom.max_future_bookings, custom.max_hours_per_week) == (5, 10)
    with pytest.raises(ConfigError) as error:
        ReservationServiceConfig.from_env({**base, "MAX_HOURS_PER_WEEK": "0", "MAX_ATTENDEES": "many"})
    assert "MAX_HOURS_PER_WEEK" in str(error.value) and "MAX_ATTENDEES" in str(error.value)
