"""Part 2 of API.md, "Rooms: time zone and booking policy": each rule, judged in the room's zone,
on the DST-change days of Europe/Berlin and in a zone with a half-hour offset (Asia/Kolkata)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import booking

from app.models import RoomReplica
from app.policies import BookingPolicy, plain_number, policy_violations
from servicekit.db import db
from servicekit.testing import wait_until

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_DAY_8_TO_20 = {day: [["08:00", "20:00"]] for day in WEEK}


def last_sunday(month: int) -> date:
    """The next last Sunday of `month` (when Europe/Berlin changes its clocks) at least two days ahead."""
    today = datetime.now(UTC).date()
    for year in (today.year, today.year + 1):
        day = date(year, month + 1, 1) - timedelta(days=1) if month < 12 else date(year, 12, 31)
        day -= timedelta(days=(day.weekday() - 6) % 7)
        if day > today + timedelta(days=2):
            return day
    raise AssertionError("unreachable")


def next_weekday(weekday: int, weeks_ahead: int = 1) -> date:
    today = datetime.now(UTC).date()
    return today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks_ahead)


def at(day: date, clock: str, zone: str) -> str:
    hours, minutes = (int(part) for part in clock.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=ZoneInfo(zone)).isoformat()


def body(room: dict, day: date, start: str, end: str, end_day: date | None = None) -> dict:
    zone = room["timezone"]
    return {
        "room_id": room["id"],
        "title": "Policy",
        "start_time": at(day, start, zone),
        "end_time": at(end_day or day, end, zone),
    }


def policy(**fields) -> dict:
    return {"open_hours": None, "min_minutes": 5, "max_minutes": 720, "horizon_days": 365, "auto_release": False, **fields}


def errors_of(response) -> list[dict]:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    return response.get_json()["errors"]


def test_the_read_model_keeps_zone_policy_capacity_equipment_and_location(app, rooms):
    room = rooms.create(capacity=6, timezone="Asia/Kolkata", booking_policy=policy(max_minutes=90), equipment=["screen"])
    with app.app_context():
        replica = db.session.get(RoomReplica, room["id"])
        assert (replica.timezone, replica.booking_policy, replica.capacity, replica.equipment, replica.location) == (
            "Asia/Kolkata",
            policy(max_minutes=90),
            6,
            ["screen"],
            "Floor 2",
        )


@pytest.mark.parametrize("month", [3, 10], ids=["spring-forward", "fall-back"])
def test_nine_to_ten_local_on_a_dst_change_day_is_inside_opening_hours(client, people, rooms, month):
    _, headers = people.user()
    room = rooms.create(name="Aurora", timezone="Europe/Berlin", booking_policy=policy(open_hours=EVERY_DAY_8_TO_20))
    day = last_sunday(month)
    response = client.post("/api/reservations", json=body(room, day, "09:00", "10:00"), headers=headers)
    assert response.status_code == 201, response.get_json()
    utc_hour = 7 if month == 3 else 8  # CEST (+02:00) after the spring change, CET (+01:00) after the autumn one
    assert datetime.fromisoformat(response.get_json()["start_time"]) == datetime.combine(day, time(utc_hour), tzinfo=UTC)


@pytest.mark.parametrize("month", [3, 10], ids=["spring-forward", "fall-back"])
def test_before_opening_on_a_dst_change_day_is_422_saying_when_the_room_is_open(client, people, rooms, month):
    _, headers = people.user()
    room = rooms.create(name="Aurora", timezone="Europe/Berlin", booking_policy=policy(open_hours=EVERY_DAY_8_TO_20))
    response = client.post("/api/reservations", json=body(room, last_sunday(month), "07:30", "08:30"), headers=headers)
    [error] = errors_of(response)
    assert error == {
        "field": "start_time",
        "rule": "booking_policy.open_hours",
        "message": "Room 'Aurora' is open 08:00–20:00 Europe/Berlin on Sundays.",
    }


def test_a_booking_running_past_closing_time_is_422_on_end_time(client, people, rooms):
    _, headers = people.user()
    hours = {"mon": [["08:00", "12:00"], ["13:00", "20:00"]]}
    room = rooms.create(name="Aurora", timezone="Europe/Berlin", booking_policy=policy(open_hours=hours))
    monday = next_weekday(0)
    [error] = errors_of(client.post("/api/reservations", json=body(room, monday, "11:00", "13:30"), headers=headers))
    assert error["field"] == "end_time" and error["rule"] == "booking_policy.open_hours"
    assert error["message"] == "Room 'Aurora' is open 08:00–12:00 and 13:00–20:00 Europe/Berlin on Mondays."
    assert client.post("/api/reservations", json=body(room, monday, "13:00", "20:00"), headers=headers).status_code == 201


def test_a_day_without_hours_is_closed(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(name="Aurora", timezone="Europe/Berlin", booking_policy=policy(open_hours={"mon": [["08:00", "20:00"]]}))
    [error] = errors_of(client.post("/api/reservations", json=body(room, next_weekday(6), "10:00", "11:00"), headers=headers))
    assert error["message"] == "Room 'Aurora' is closed on Sundays (Europe/Berlin)."


def test_opening_hours_that_run_through_midnight_join_up(client, people, rooms):
    _, headers = people.user()
    hours = {"sat": [["20:00", "24:00"]], "sun": [["00:00", "02:00"]]}
    room = rooms.create(timezone="Europe/Berlin", booking_policy=policy(open_hours=hours))
    saturday = next_weekday(5)
    overnight = body(room, saturday, "23:00", "01:00", end_day=saturday + timedelta(days=1))
    assert client.post("/api/reservations", json=overnight, headers=headers).status_code == 201
    too_long = body(room, saturday, "23:00", "02:30", end_day=saturday + timedelta(days=1))
    assert errors_of(client.post("/api/reservations", json=too_long, headers=headers))[0]["field"] == "end_time"


def test_a_half_hour_offset_zone_is_judged_in_local_time(client, people, rooms):
    _, headers = people.user()
    hours = {day: [["09:00", "17:30"]] for day in WEEK}
    room = rooms.create(name="Ganges", timezone="Asia/Kolkata", booking_policy=policy(open_hours=hours))
    day = next_weekday(2)
    inside = {**body(room, day, "09:00", "10:00")}
    assert inside["start_time"].endswith("+05:30")
    response = client.post("/api/reservations", json=inside, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert datetime.fromisoformat(response.get_json()["start_time"]) == datetime.combine(day, time(3, 30), tzinfo=UTC)
    # The same instants written in UTC are judged the same way: 12:00Z is 17:30 IST, closing time.
    last = {
        "room_id": room["id"],
        "title": "Late",
        "start_time": datetime.combine(day, time(11, 0), tzinfo=UTC).isoformat(),
        "end_time": datetime.combine(day, time(12, 0), tzinfo=UTC).isoformat(),
    }
    assert client.post("/api/reservations", json=last, headers=headers).status_code == 201
    [error] = errors_of(client.post("/api/reservations", json=body(room, day, "17:00", "18:00"), headers=headers))
    assert error["message"] == "Room 'Ganges' is open 09:00–17:30 Asia/Kolkata on Wednesdays."


def test_duration_across_the_spring_forward_gap_is_real_elapsed_time(client, people, rooms):
    """01:00 to 04:00 on the night clocks jump from 02:00 to 03:00 is two hours, not three."""
    _, headers = people.user()
    room = rooms.create(name="Aurora", timezone="Europe/Berlin", booking_policy=policy(max_minutes=150))
    spring = last_sunday(3)
    assert client.post("/api/reservations", json=body(room, spring, "01:00", "04:00"), headers=headers).status_code == 201
    saturday = spring - timedelta(days=1)
    [error] = errors_of(client.post("/api/reservations", json=body(room, saturday, "01:00", "04:00"), headers=headers))
    assert error["field"] == "end_time" and error["rule"] == "booking_policy.max_minutes"
    assert "at most 150 minutes" in error["message"] and "lasts 180" in error["message"]


def test_duration_across_the_fall_back_repeat_is_real_elapsed_time(client, people, rooms):
    """01:00 to 03:00 on the night 02:00-03:00 happens twice is three hours."""
    _, headers = people.user()
    room = rooms.create(timezone="Europe/Berlin", booking_policy=policy(max_minutes=150))
    [error] = errors_of(client.post("/api/reservations", json=body(room, last_sunday(10), "01:00", "03:00"), headers=headers))
    assert error["rule"] == "booking_policy.max_minutes" and "lasts 180" in error["message"]


def test_shorter_than_the_minimum_is_422(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(name="Quick", booking_policy=policy(min_minutes=30))
    [error] = errors_of(client.post("/api/reservations", json=booking(room["id"], minutes=15), headers=headers))
    assert error["field"] == "end_time" and error["rule"] == "booking_policy.min_minutes"
    assert error["message"] == "Room 'Quick' is booked for at least 30 minutes; this booking lasts 15."
    assert client.post("/api/reservations", json=booking(room["id"], minutes=30), headers=headers).status_code == 201


def test_beyond_the_rooms_horizon_is_422(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(name="Soon", booking_policy=policy(horizon_days=7))
    [error] = errors_of(client.post("/api/reservations", json=booking(room["id"], hours_ahead=24 * 8), headers=headers))
    assert error == {
        "field": "start_time",
        "rule": "booking_policy.horizon_days",
        "message": "Room 'Soon' can be booked at most 7 days ahead.",
    }
    assert client.post("/api/reservations", json=booking(room["id"], hours_ahead=24 * 4), headers=headers).status_code == 201


def test_a_room_may_allow_longer_bookings_than_the_service_default(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(booking_policy=policy(max_minutes=16 * 60))
    assert client.post("/api/reservations", json=booking(room["id"], minutes=14 * 60), headers=headers).status_code == 201


def test_moving_a_booking_follows_the_rules_and_existing_bookings_survive_a_rule_change(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(name="Aurora", timezone="Europe/Berlin", booking_policy=policy())
    monday = next_weekday(0)
    early = client.post("/api/reservations", json=body(room, monday, "06:00", "07:00"), headers=headers).get_json()
    rooms.publish("room.updated", {**room, "booking_policy": policy(open_hours={"mon": [["08:00", "20:00"]]})})
    wait_until(
        lambda: client.post("/api/reservations", json=body(room, monday, "06:00", "06:30"), headers=headers).status_code == 422,
        message="the new rules to reach the read model",
    )
    kept = client.get(f"/api/reservations/{early['id']}", headers=headers).get_json()
    assert kept["status"] == "confirmed"
    renamed = client.put(f"/api/reservations/{early['id']}", json={"title": "Still on"}, headers=headers)
    assert renamed.status_code == 200  # not moved: the old booking is left alone
    moved = client.put(
        f"/api/reservations/{early['id']}", json={"start_time": at(monday, "05:00", "Europe/Berlin")}, headers=headers
    )
    assert errors_of(moved)[0]["rule"] == "booking_policy.open_hours"
    into_hours = {"start_time": at(monday, "08:00", "Europe/Berlin"), "end_time": at(monday, "09:00", "Europe/Berlin")}
    assert client.put(f"/api/reservations/{early['id']}", json=into_hours, headers=headers).status_code == 200


def test_rooms_announced_without_a_policy_keep_the_services_limits(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()  # as room-service announced rooms before policies existed
    assert client.post("/api/reservations", json=booking(room["id"], minutes=1), headers=headers).status_code == 201
    [error] = errors_of(client.post("/api/reservations", json=booking(room["id"], 3, minutes=13 * 60), headers=headers))
    assert error["field"] == "end_time"


def test_a_booking_at_the_edge_of_the_calendar_is_422_not_an_overflow(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(timezone="Pacific/Kiritimati", booking_policy=policy(open_hours=EVERY_DAY_8_TO_20))
    body = {
        "room_id": room["id"],
        "title": "Far",
        "start_time": "9999-12-31T20:00:00+00:00",
        "end_time": "9999-12-31T21:00:00+00:00",
    }
    assert errors_of(client.post("/api/reservations", json=body, headers=headers))[0]["field"] == "start_time"
    soon = booking(room["id"])
    body = {**soon, "end_time": "9999-12-31T21:00:00+00:00"}
    assert errors_of(client.post("/api/reservations", json=body, headers=headers))[0]["field"] == "end_time"


def test_a_duration_in_a_message_is_a_plain_number_never_scientific_notation():
    start = datetime(2027, 1, 1, tzinfo=UTC)
    (error,) = policy_violations(
        "Hall",
        "UTC",
        BookingPolicy(None, 5, 720, 365),
        start,
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        start - timedelta(days=1),
    )[:1]
    assert error["rule"] == "booking_policy.max_minutes"
    assert error["message"].endswith("this booking lasts 4193392319.98.") and "e+" not in error["message"]
    assert [plain_number(n) for n in (15, 0.5, 2.0, 1 / 3)] == ["15", "0.5", "2", "0.33"]
