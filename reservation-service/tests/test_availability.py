"""Part 2 of API.md, "Finding a room": free rooms for a window, free/busy in the rooms' zones, and
suggestions on a refused booking that really succeed. Answered from this service's own tables."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import booking, slot
from test_room_policies import next_weekday, policy

PROBLEM = "application/problem+json"
WEEKDAYS = {day: [["08:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def local(day: date, hours: float, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)) + timedelta(hours=hours)


def window(hours_ahead: float = 0, minutes: int = 60) -> dict:
    start, end = slot(hours_ahead, minutes)
    return {"start_time": start, "end_time": end}


def free(client, headers, **params) -> list[int]:
    response = client.get("/api/availability", query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return [room["room_id"] for room in response.get_json()["items"]]


@pytest.fixture
def wing() -> str:
    """A location of this test's own, so rooms other tests announced stay out of its answers."""
    return f"Wing {uuid.uuid4().hex[:8]}"


def test_free_rooms_are_filtered_by_capacity_equipment_and_location_smallest_first(client, people, rooms, wing):
    _, headers = people.user()
    big = rooms.create(capacity=20, location=wing, equipment=["projector", "screen"])
    small = rooms.create(capacity=4, location=wing, equipment=["screen"])
    middle = rooms.create(capacity=8, location=wing.upper(), equipment=["projector", "screen", "whiteboard"])
    rooms.create(capacity=8, location=wing, is_active=False)
    gone = rooms.create(capacity=6, location=wing)
    rooms.publish("room.deleted", {**gone, "location": wing})
    elsewhere = rooms.create(capacity=5, location="Another building", equipment=["screen"])
    when = window(1)
    assert free(client, headers, location=wing, **when) == [small["id"], middle["id"], big["id"]]
    assert free(client, headers, location=wing, min_capacity=5, **when) == [middle["id"], big["id"]]
    equipped = client.get(
        "/api/availability",
        query_string=[("location", wing), ("equipment", "Projector"), ("equipment", "screen"), *when.items()],
        headers=headers,
    ).get_json()
    assert [r["room_id"] for r in equipped["items"]] == [middle["id"], big["id"]]
    assert set(equipped["items"][0]) == {"room_id", "name", "capacity", "location", "equipment", "timezone"}
    assert elsewhere["id"] in free(client, headers, location="another", equipment="screen", **when)
    page = client.get("/api/availability", query_string={"location": wing, "per_page": 2, "page": 2, **when}, headers=headers)
    assert page.get_json()["total"] == 3 and [r["room_id"] for r in page.get_json()["items"]] == [big["id"]]


def test_booked_blacked_out_and_closed_rooms_are_not_free(client, people, rooms, wing):
    _, headers = people.user()
    _, admin = people.admin()
    booked, blacked_out, open_room = (rooms.create(capacity=capacity, location=wing) for capacity in (3, 4, 5))
    berlin = rooms.create(capacity=6, location=wing, timezone="Europe/Berlin", booking_policy=policy(open_hours=WEEKDAYS))
    monday = next_weekday(0)
    morning = {
        "start_time": local(monday, 9, "Europe/Berlin").isoformat(),
        "end_time": local(monday, 10, "Europe/Berlin").isoformat(),
    }
    night = {
        "start_time": local(monday, 21, "Europe/Berlin").isoformat(),
        "end_time": local(monday, 22, "Europe/Berlin").isoformat(),
    }
    assert (
        client.post("/api/reservations", json={"room_id": booked["id"], "title": "B", **morning}, headers=headers).status_code
        == 201
    )
    assert (
        client.post(
            "/api/blackouts", json={"room_id": blacked_out["id"], "reason": "Paint", **morning}, headers=admin
        ).status_code
        == 201
    )
    assert free(client, headers, location=wing, **morning) == [open_room["id"], berlin["id"]]
    assert free(client, headers, location=wing, **night) == [booked["id"], blacked_out["id"], open_room["id"]]
    assert client.post("/api/blackouts", json={"room_id": None, "reason": "Power cut", **night}, headers=admin).status_code == 201
    assert free(client, headers, location=wing, **night) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_time": "2030-01-01T10:00:00+00:00", "end_time": "2030-01-01T09:00:00+00:00"}, "end_time"),
        ({"start_time": "2030-01-01T10:00:00+00:00", "end_time": "2030-01-09T10:00:00+00:00"}, "end_time"),
        ({"start_time": "2030-01-01T10:00:00", "end_time": "2030-01-01T11:00:00+00:00"}, "start_time"),
        ({"end_time": "2030-01-01T11:00:00+00:00"}, "start_time"),
        ({"start_time": "2030-01-01T10:00:00Z", "end_time": "2030-01-01T11:00:00Z", "min_capacity": "0"}, "min_capacity"),
        ({"start_time": "2030-01-01T10:00:00Z", "end_time": "2030-01-01T11:00:00Z", "colour": "red"}, "colour"),
        ({"start_time": "9999-12-31T20:00:00Z", "end_time": "9999-12-31T21:00:00Z"}, "end_time"),
    ],
    ids=[
        "end-before-start",
        "longer-than-7-days",
        "naive",
        "missing-start",
        "zero-capacity",
        "unknown-parameter",
        "calendar-edge",
    ],
)
def test_invalid_availability_windows_are_422_naming_the_field(client, people, params, field):
    _, headers = people.user()
    response = client.get("/api/availability", query_string=params, headers=headers)
    assert response.status_code == 422 and response.content_type == PROBLEM
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_free_busy_in_two_zones_shows_bookings_blackouts_and_closed_hours_without_titles(client, people, rooms):
    _, alice = people.user()
    _, bob = people.user()
    _, admin = people.admin()
    berlin = rooms.create(timezone="Europe/Berlin", booking_policy=policy(open_hours=WEEKDAYS))
    kolkata = rooms.create(timezone="Asia/Kolkata", booking_policy=policy(open_hours={"mon": [["09:00", "17:30"]]}))
    monday = next_weekday(0)
    start = datetime.combine(monday, time(0), tzinfo=UTC)
    meeting = (local(monday, 9, "Europe/Berlin"), local(monday, 10, "Europe/Berlin"))
    body = {
        "room_id": berlin["id"],
        "title": "Secret merger",
        "start_time": meeting[0].isoformat(),
        "end_time": meeting[1].isoformat(),
    }
    assert client.post("/api/reservations", json=body, headers=alice).status_code == 201
    drill = (local(monday, 10, "Asia/Kolkata"), local(monday, 11, "Asia/Kolkata"))
    closing = {"room_id": kolkata["id"], "reason": "Drill", "start_time": drill[0].isoformat(), "end_time": drill[1].isoformat()}
    assert client.post("/api/blackouts", json=closing, headers=admin).status_code == 201
    params = [
        ("room_id", berlin["id"]),
        ("room_id", kolkata["id"]),
        ("from", start.isoformat()),
        ("to", (start + timedelta(days=1)).isoformat()),
    ]
    response = client.get("/api/availability/free-busy", query_string=params, headers=bob)
    assert response.status_code == 200, response.get_json()

    def interval(a: datetime, b: datetime, kind: str) -> dict:
        return {"start_time": a.astimezone(UTC).isoformat(), "end_time": b.astimezone(UTC).isoformat(), "kind": kind}

    def open_from(room: dict, zone: str, opens: float, closes: float, busy: dict) -> dict:
        """The room's day: closed until `opens` and from `closes` (local hours), `busy` in between."""
        end = start + timedelta(days=1)
        before, after = (
            interval(start, local(monday, opens, zone), "closed"),
            interval(local(monday, closes, zone), end, "closed"),
        )
        return {"room_id": room["id"], "timezone": zone, "busy": [before, busy, after]}

    assert response.get_json() == {
        "rooms": [
            open_from(berlin, "Europe/Berlin", 8, 20, interval(*meeting, "reservation")),
            open_from(kolkata, "Asia/Kolkata", 9, 17.5, interval(*drill, "blackout")),
        ]
    }
    assert "Secret merger" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ([("room_id", "{room}"), ("from", "2030-01-02T00:00:00Z"), ("to", "2030-01-01T00:00:00Z")], "to"),
        ([("room_id", "{room}"), ("from", "2030-01-01T00:00:00Z"), ("to", "2030-02-02T00:00:00Z")], "to"),
        ([("room_id", "{room}"), ("from", "2030-01-01T00:00:00"), ("to", "2030-01-02T00:00:00Z")], "from"),
        ([("from", "2030-01-01T00:00:00Z"), ("to", "2030-01-02T00:00:00Z")], "room_id"),
        (
            [*(("room_id", str(n)) for n in range(1, 52)), ("from", "2030-01-01T00:00:00Z"), ("to", "2030-01-02T00:00:00Z")],
            "room_id",
        ),
    ],
    ids=["to-before-from", "longer-than-31-days", "naive", "no-room", "51-rooms"],
)
def test_invalid_free_busy_requests_are_422_naming_the_field(client, people, rooms, params, field):
    _, headers = people.user()
    room = rooms.create()
    params = [(name, value.replace("{room}", str(room["id"]))) for name, value in params]
    response = client.get("/api/availability/free-busy", query_string=params, headers=headers)
    assert response.status_code == 422 and response.content_type == PROBLEM, response.get_json()
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_a_409_suggests_the_same_room_later_and_other_fitting_rooms_and_they_succeed(client, people, rooms):
    _, alice = people.user()
    _, bob = people.user()
    kit = f"screen-{uuid.uuid4().hex[:6]}"  # only this test's rooms have it
    wanted = rooms.create(capacity=4, equipment=[kit])
    roomy = rooms.create(capacity=12, equipment=[kit, "projector"])
    snug = rooms.create(capacity=6, equipment=[kit])
    rooms.create(capacity=2, equipment=[kit])  # too small for three attendees
    rooms.create(capacity=8, equipment=["projector"])  # lacks the equipment
    assert client.post("/api/reservations", json=booking(wanted["id"], 0, 60), headers=alice).status_code == 201
    assert client.post("/api/reservations", json=booking(wanted["id"], 1, 30), headers=alice).status_code == 201
    request = booking(wanted["id"], 0.5, 60, attendees=["a@example.com", "b@example.com", "c@example.com"])
    response = client.post("/api/reservations", json=request, headers=bob)
    assert response.status_code == 409
    suggestions = response.get_json()["suggestions"]
    free_from = datetime.fromisoformat(slot(1.5)[0]).astimezone(UTC)  # after the second booking
    asked = datetime.fromisoformat(request["start_time"]).astimezone(UTC)
    assert suggestions == [
        {"room_id": wanted["id"], "start_time": free_from.isoformat(), "end_time": (free_from + timedelta(hours=1)).isoformat()},
        {"room_id": snug["id"], "start_time": asked.isoformat(), "end_time": (asked + timedelta(hours=1)).isoformat()},
        {"room_id": roomy["id"], "start_time": asked.isoformat(), "end_time": (asked + timedelta(hours=1)).isoformat()},
    ]
    for suggestion in suggestions:
        retry = {**request, **suggestion}
        assert client.post("/api/reservations", json=retry, headers=bob).status_code == 201, suggestion


def test_the_same_room_suggestion_is_the_nearest_free_time_before_or_after(client, people, rooms):
    """Booked 10-11 and 11-13 (hours from now on): asked for 10-11, the nearest free hour of the room is 9-10,
    one hour earlier, not 13-14, three hours later. With 9-10 booked too, it is 8-9; with 8-9 booked as well,
    7-8 and 13-14 are as near, and of two as near the later is suggested."""
    _, alice = people.user()
    _, bob = people.user()
    room = rooms.create(capacity=4, equipment=[f"pad-{uuid.uuid4().hex[:6]}"])
    assert client.post("/api/reservations", json=booking(room["id"], 10, 60), headers=alice).status_code == 201
    assert client.post("/api/reservations", json=booking(room["id"], 11, 120), headers=alice).status_code == 201

    def same_room_suggestion() -> dict:
        response = client.post("/api/reservations", json=booking(room["id"], 10, 60), headers=bob)
        assert response.status_code == 409
        return response.get_json()["suggestions"][0]

    def hour(hours_ahead: float) -> dict:
        start, end = slot(hours_ahead, 60)
        as_utc = {
            name: datetime.fromisoformat(value).astimezone(UTC).isoformat()
            for name, value in (("start_time", start), ("end_time", end))
        }
        return {"room_id": room["id"], **as_utc}

    assert same_room_suggestion() == hour(9)
    assert client.post("/api/reservations", json=booking(room["id"], 9, 60), headers=alice).status_code == 201
    assert same_room_suggestion() == hour(8)
    assert client.post("/api/reservations", json=booking(room["id"], 8, 60), headers=alice).status_code == 201
    assert same_room_suggestion() == hour(13)
    retry = {**booking(room["id"], 10, 60), **hour(13)}
    assert client.post("/api/reservations", json=retry, headers=bob).status_code == 201


def test_the_same_room_suggestion_respects_opening_hours_and_blackouts(client, people, rooms):
    _, alice = people.user()
    _, admin = people.admin()
    kit = f"board-{uuid.uuid4().hex[:6]}"
    mornings = {day: [["08:00", "12:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    room = rooms.create(timezone="Europe/Berlin", equipment=[kit], booking_policy=policy(open_hours=mornings))
    monday = next_weekday(0)
    tuesday = monday + timedelta(days=1)

    def at(day: date, hours: float) -> str:
        return local(day, hours, "Europe/Berlin").isoformat()

    # The whole Monday morning: no earlier time that day either (the nearest open hour before it is days back).
    taken = {"room_id": room["id"], "title": "Long", "start_time": at(monday, 8), "end_time": at(monday, 12)}
    assert client.post("/api/reservations", json=taken, headers=alice).status_code == 201
    drill = {"room_id": room["id"], "reason": "Drill", "start_time": at(tuesday, 8), "end_time": at(tuesday, 9.5)}
    assert client.post("/api/blackouts", json=drill, headers=admin).status_code == 201
    request = {"room_id": room["id"], "title": "Late", "start_time": at(monday, 11), "end_time": at(monday, 12)}
    response = client.post("/api/reservations", json=request, headers=alice)
    assert response.status_code == 409
    assert response.get_json()["suggestions"] == [
        {
            "room_id": room["id"],
            "start_time": local(tuesday, 9.5, "Europe/Berlin").astimezone(UTC).isoformat(),
            "end_time": local(tuesday, 10.5, "Europe/Berlin").astimezone(UTC).isoformat(),
        }
    ]
    retry = {**request, **response.get_json()["suggestions"][0]}
    assert client.post("/api/reservations", json=retry, headers=alice).status_code == 201


def test_free_busy_keeps_the_asked_order_clips_to_the_window_and_shows_blackouts_of_every_room(client, people, rooms):
    _, alice = people.user()
    _, admin = people.admin()
    quiet, busy = rooms.create(), rooms.create()
    start, end = slot(0, 60)
    meeting = {"room_id": busy["id"], "title": "Planning", "start_time": start, "end_time": end}
    assert client.post("/api/reservations", json=meeting, headers=alice).status_code == 201
    booked_from = datetime.fromisoformat(start).astimezone(UTC)
    hour = timedelta(hours=1)
    everywhere = {
        "room_id": None,
        "reason": "Fire drill",
        "start_time": (booked_from + hour).isoformat(),
        "end_time": (booked_from + 2 * hour).isoformat(),
    }
    assert client.post("/api/blackouts", json=everywhere, headers=admin).status_code == 201
    # The window starts a quarter of a second into the booking: intervals are clipped to it, to the microsecond.
    window_from = booked_from + timedelta(microseconds=250_000)
    window_to = booked_from + 3 * hour
    params = [
        ("room_id", busy["id"]),
        ("room_id", quiet["id"]),
        ("room_id", busy["id"]),
        ("from", window_from.isoformat()),
        ("to", window_to.isoformat()),
    ]
    response = client.get("/api/availability/free-busy", query_string=params, headers=alice)
    assert response.status_code == 200, response.get_json()
    clipped = {"start_time": window_from.isoformat(), "end_time": (booked_from + hour).isoformat(), "kind": "reservation"}
    assert clipped["start_time"].endswith(".250000+00:00")
    drill = {"start_time": (booked_from + hour).isoformat(), "end_time": (booked_from + 2 * hour).isoformat(), "kind": "blackout"}
    assert response.get_json() == {
        "rooms": [
            {"room_id": busy["id"], "timezone": "UTC", "busy": [clipped, drill]},
            {"room_id": quiet["id"], "timezone": "UTC", "busy": [drill]},
        ]
    }
    later = [("room_id", quiet["id"]), ("from", window_to.isoformat()), ("to", (window_to + hour).isoformat())]
    response = client.get("/api/availability/free-busy", query_string=later, headers=alice)
    assert response.get_json() == {"rooms": [{"room_id": quiet["id"], "timezone": "UTC", "busy": []}]}


def test_rooms_with_the_same_opening_hours_in_other_zones_are_open_at_other_times(client, people, rooms, wing):
    """Opening hours are checked once per zone, hours and window: rooms sharing hours share answers only in one zone."""
    _, headers = people.user()
    hours = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    berlin = [
        rooms.create(capacity=c, location=wing, timezone="Europe/Berlin", booking_policy=policy(open_hours=hours)) for c in (3, 5)
    ]
    kolkata = rooms.create(capacity=4, location=wing, timezone="Asia/Kolkata", booking_policy=policy(open_hours=hours))
    always = rooms.create(capacity=6, location=wing)
    monday = next_weekday(0)
    berlin_morning = {
        "start_time": local(monday, 10, "Europe/Berlin").isoformat(),
        "end_time": local(monday, 11, "Europe/Berlin").isoformat(),
    }  # 14:30-15:30 in Kolkata: open there too
    kolkata_evening = {
        "start_time": local(monday, 17, "Asia/Kolkata").isoformat(),
        "end_time": local(monday, 18, "Asia/Kolkata").isoformat(),
    }  # midday in Berlin: closed in Kolkata
    assert free(client, headers, location=wing, **berlin_morning) == [
        berlin[0]["id"],
        kolkata["id"],
        berlin[1]["id"],
        always["id"],
    ]
    assert free(client, headers, location=wing, **kolkata_evening) == [berlin[0]["id"], berlin[1]["id"], always["id"]]
    page = client.get(
        "/api/availability", query_string={"location": wing, "per_page": 2, "page": 3, **kolkata_evening}, headers=headers
    ).get_json()
    assert page == {"items": [], "page": 3, "per_page": 2, "total": 3, "total_is_estimate": False}
    last = client.get(
        "/api/availability", query_string={"location": wing, "per_page": 2, "page": 2, **kolkata_evening}, headers=headers
    ).get_json()
    assert last["total"] == 3 and last["items"] == [
        {
            "room_id": always["id"],
            "name": always["name"],
            "capacity": 6,
            "location": wing,
            "equipment": ["projector"],
            "timezone": "UTC",
        }
    ]
