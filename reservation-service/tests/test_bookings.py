"""Creating, reading, changing and cancelling reservations: the rules of API.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import booking, slot

PROBLEM = "application/problem+json"


def test_booking_a_room_returns_the_reservation_in_utc(client, people, rooms):
    user, headers = people.user()
    room = rooms.create()
    body = booking(room["id"], attendees=["Bob@Example.com"], description="Quarterly")
    response = client.post("/api/reservations", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    reservation = response.get_json()
    assert set(reservation) == {
        "id",
        "room_id",
        "user_id",
        "title",
        "description",
        "start_time",
        "end_time",
        "attendees",
        "status",
        "created_at",
        "updated_at",
        "sequence",
        "checked_in_at",
        "series_id",
        "recurrence_id",
    }
    assert reservation["checked_in_at"] is None
    assert reservation["user_id"] == user["id"] and reservation["room_id"] == room["id"]
    assert reservation["status"] == "confirmed"
    assert reservation["attendees"] == ["bob@example.com"]
    assert reservation["start_time"].endswith("+00:00")
    assert datetime.fromisoformat(reservation["start_time"]) == datetime.fromisoformat(body["start_time"])
    assert response.headers["Location"] == f"/api/reservations/{reservation['id']}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start_time": "2030-03-01T09:00:00", "end_time": "2030-03-01T10:00:00"}, "start_time"),
        ({"room_id": "1"}, "room_id"),
        ({"title": ""}, "title"),
        ({"attendees": ["not-an-email"]}, "attendees.0"),
        ({"attendees": "a@example.com"}, "attendees"),
        ({"status": "cancelled"}, "status"),
        ({"user_id": 1}, "user_id"),
    ],
    ids=[
        "naive-times",
        "string-room-id",
        "empty-title",
        "bad-attendee",
        "attendees-not-a-list",
        "status-not-writable",
        "no-mass-assignment",
    ],
)
def test_invalid_fields_are_422_naming_the_field(client, people, rooms, change, field):
    _, headers = people.user()
    room = rooms.create()
    response = client.post("/api/reservations", json={**booking(room["id"]), **change}, headers=headers)
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert field in [e["field"] for e in response.get_json()["errors"]]


def _times(start: datetime, minutes: int) -> dict:
    return {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=minutes)).isoformat()}


@pytest.mark.parametrize(
    ("times", "field"),
    [
        (
            lambda now: {
                "start_time": (now + timedelta(hours=2)).isoformat(),
                "end_time": (now + timedelta(hours=1)).isoformat(),
            },
            "end_time",
        ),
        (
            lambda now: {
                "start_time": (now + timedelta(hours=2)).isoformat(),
                "end_time": (now + timedelta(hours=2)).isoformat(),
            },
            "end_time",
        ),
        (lambda now: _times(now - timedelta(hours=1), 60), "start_time"),
        (lambda now: _times(now + timedelta(days=1), 13 * 60), "end_time"),
        (lambda now: _times(now + timedelta(days=400), 60), "start_time"),
    ],
    ids=["end-before-start", "empty-interval", "start-in-the-past", "longer-than-12h", "beyond-horizon"],
)
def test_time_rules_are_422(client, people, rooms, times, field):
    _, headers = people.user()
    room = rooms.create()
    body = {"room_id": room["id"], "title": "T", **times(datetime.now(UTC))}
    response = client.post("/api/reservations", json=body, headers=headers)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_unknown_inactive_or_too_small_rooms_are_422(client, people, rooms):
    _, headers = people.user()
    inactive = rooms.create(is_active=False)
    small = rooms.create(capacity=2)
    assert client.post("/api/reservations", json=booking(inactive["id"]), headers=headers).status_code == 422
    crowd = booking(small["id"], attendees=["a@example.com", "b@example.com", "c@example.com"])
    response = client.post("/api/reservations", json=crowd, headers=headers)
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "attendees"
    assert (
        client.post(
            "/api/reservations", json=booking(small["id"], attendees=["a@example.com", "b@example.com"]), headers=headers
        ).status_code
        == 201
    )


def test_an_unknown_room_while_room_service_is_down_is_503_not_a_booking(client, people):
    _, headers = people.user()
    response = client.post("/api/reservations", json=booking(987654321), headers=headers)
    assert response.status_code == 503
    assert response.content_type == PROBLEM and response.headers["Retry-After"]
    assert client.get("/api/reservations", headers=headers).get_json()["total"] == 0


def test_overlapping_booking_is_409_with_conflicts(client, people, rooms):
    _, alice = people.user()
    _, bob = people.user()
    room = rooms.create()
    first = client.post("/api/reservations", json=booking(room["id"], 0, 120), headers=alice).get_json()
    response = client.post("/api/reservations", json=booking(room["id"], 1, 60), headers=bob)
    assert response.status_code == 409
    assert response.content_type == PROBLEM
    assert response.get_json()["conflicts"] == [
        {"reservation_id": first["id"], "start_time": first["start_time"], "end_time": first["end_time"]}
    ]


def test_adjacent_bookings_are_allowed(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    assert client.post("/api/reservations", json=booking(room["id"], 0, 60), headers=headers).status_code == 201
    assert client.post("/api/reservations", json=booking(room["id"], 1, 60), headers=headers).status_code == 201
    assert client.post("/api/reservations", json=booking(room["id"], -1, 60), headers=headers).status_code == 201


def test_the_same_time_in_another_room_is_fine(client, people, rooms):
    _, headers = people.user()
    assert client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).status_code == 201
    assert client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).status_code == 201


def test_cancelling_frees_the_slot_and_keeps_the_reservation_readable(client, people, rooms):
    _, alice = people.user()
    _, bob = people.user()
    room = rooms.create()
    first = client.post("/api/reservations", json=booking(room["id"]), headers=alice).get_json()
    assert client.delete(f"/api/reservations/{first['id']}", headers=alice).status_code == 204
    cancelled = client.get(f"/api/reservations/{first['id']}", headers=alice).get_json()
    assert cancelled["status"] == "cancelled"
    assert client.post("/api/reservations", json=booking(room["id"]), headers=bob).status_code == 201
    assert client.delete(f"/api/reservations/{first['id']}", headers=alice).status_code == 204  # idempotent


def test_moving_onto_another_booking_is_409_and_changes_nothing(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    first = client.post("/api/reservations", json=booking(room["id"], 0), headers=headers).get_json()
    second = client.post("/api/reservations", json=booking(room["id"], 3), headers=headers).get_json()
    start, end = slot(0)
    response = client.put(f"/api/reservations/{second['id']}", json={"start_time": start, "end_time": end}, headers=headers)
    assert response.status_code == 409
    assert [c["reservation_id"] for c in response.get_json()["conflicts"]] == [first["id"]]
    assert client.get(f"/api/reservations/{second['id']}", headers=headers).get_json() == second


def test_updating_title_time_and_attendees(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    created = client.post("/api/reservations", json=booking(room["id"]), headers=headers).get_json()
    start, end = slot(5, 30)
    response = client.put(
        f"/api/reservations/{created['id']}",
        json={"title": "Retro", "start_time": start, "end_time": end, "attendees": ["c@example.com"]},
        headers=headers,
    )
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["title"] == "Retro" and updated["attendees"] == ["c@example.com"]
    assert datetime.fromisoformat(updated["start_time"]) == datetime.fromisoformat(start)
    assert updated["updated_at"] > created["updated_at"]


def test_updates_follow_the_creation_rules(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(capacity=1)
    created = client.post("/api/reservations", json=booking(room["id"]), headers=headers).get_json()
    past = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    assert client.put(f"/api/reservations/{created['id']}", json={"start_time": past}, headers=headers).status_code == 422
    assert (
        client.put(
            f"/api/reservations/{created['id']}", json={"attendees": ["a@example.com", "b@example.com"]}, headers=headers
        ).status_code
        == 422
    )
    assert client.put(f"/api/reservations/{created['id']}", json={"title": None}, headers=headers).status_code == 422
    assert client.put(f"/api/reservations/{created['id']}", json={"status": "confirmed"}, headers=headers).status_code == 422


def test_moving_a_reservation_to_a_start_in_the_past_is_422(client, people, rooms):
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    now = datetime.now(UTC)
    # Only the past-start rule is broken: 60 minutes long, ending in the future.
    moved = {"start_time": (now - timedelta(minutes=30)).isoformat(), "end_time": (now + timedelta(minutes=30)).isoformat()}
    response = client.put(f"/api/reservations/{created['id']}", json=moved, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "start_time", "message": "Must not be in the past."}]
    assert client.get(f"/api/reservations/{created['id']}", headers=headers).get_json()["start_time"] == created["start_time"]


def test_a_cancelled_reservation_cannot_be_changed(client, people, rooms):
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    client.delete(f"/api/reservations/{created['id']}", headers=headers)
    assert client.put(f"/api/reservations/{created['id']}", json={"title": "Back"}, headers=headers).status_code == 409


def test_unknown_and_non_numeric_ids_are_404(client, people):
    _, headers = people.user()
    for method in ("get", "put", "delete"):
        assert getattr(client, method)("/api/reservations/999999999", headers=headers, json={"title": "x"}).status_code == 404
        assert getattr(client, method)("/api/reservations/abc", headers=headers, json={"title": "x"}).status_code == 404


def test_no_token_is_401(client):
    assert client.get("/api/reservations").status_code == 401
    assert client.post("/api/reservations", json={}).status_code == 401
    assert client.get("/api/reservations/room/1").status_code == 401


def test_bookings_and_conflicts_are_counted_for_operators(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()

    def value(name: str) -> float:
        for line in client.get("/metrics").get_data(as_text=True).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    created, conflicts = value("reservations_created_total"), value("reservation_conflicts_total")
    client.post("/api/reservations", json=booking(room["id"]), headers=headers)
    client.post("/api/reservations", json=booking(room["id"]), headers=headers)
    assert value("reservations_created_total") == created + 1
    assert value("reservation_conflicts_total") == conflicts + 1


def test_times_at_the_edge_of_the_calendar_are_422_not_500(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    body = {
        "room_id": room["id"],
        "title": "T",
        "start_time": "9999-12-31T23:00:00-01:00",
        "end_time": "9999-12-31T23:30:00-01:00",
    }
    response = client.post("/api/reservations", json=body, headers=headers)
    assert response.status_code == 422
    assert client.get("/api/reservations?from=0001-01-01T00:00:00%2B01:00", headers=headers).status_code == 422
    assert client.get(f"/api/reservations/room/{room['id']}?from=9999-12-30T00:00:00Z", headers=headers).status_code == 422


# Not date-times with an offset, though pydantic alone reads some (as seconds since 1970): numbers, a date.
NOT_RFC3339 = ["0", "-1", "1.5", "1795759410", "2030-03-01", "2030-03-01T09:00:00"]


@pytest.mark.parametrize("value", NOT_RFC3339)
def test_query_times_that_are_not_rfc3339_with_an_offset_are_422_naming_the_parameter(client, people, rooms, value):
    _, headers = people.user()
    _, admin = people.admin()
    room = rooms.create()
    later = "2030-03-02T09:00:00Z"
    asked = {
        "from": ("/api/reservations", {"from": value}, headers),
        "to": ("/api/reservations", {"to": value}, headers),
        "schedule from": (f"/api/reservations/room/{room['id']}", {"from": value}, headers),
        "schedule to": (f"/api/reservations/room/{room['id']}", {"to": value}, headers),
        "blackouts from": ("/api/blackouts", {"from": value}, headers),
        "availability start_time": ("/api/availability", {"start_time": value, "end_time": later}, headers),
        "free-busy from": ("/api/availability/free-busy", {"room_id": room["id"], "from": value, "to": later}, headers),
        "report from": ("/api/reports/utilization", {"from": value, "to": later}, admin),
    }
    for case, (path, query, caller) in asked.items():
        response = client.get(path, query_string=query, headers=caller)
        assert response.status_code == 422 and response.content_type == PROBLEM, (case, response.get_json())
        field = case.rsplit(" ", 1)[-1]
        assert [e["field"] for e in response.get_json()["errors"]] == [field], case
    cancel = client.delete("/api/reservations/series/424242", query_string={"from": value}, headers=headers)
    assert cancel.status_code == 422 and [e["field"] for e in cancel.get_json()["errors"]] == ["from"]


# The same future time as a number, which pydantic alone reads as seconds since 1970.
NOT_RFC3339_FORMS = {
    "seconds-since-1970": lambda moment: str(int(moment.timestamp())),
    "fractional-seconds-since-1970": lambda moment: f"{int(moment.timestamp())}.5",
}


@pytest.mark.parametrize("form", NOT_RFC3339_FORMS.values(), ids=NOT_RFC3339_FORMS.keys())
def test_body_times_refuse_what_query_times_refuse(client, people, rooms, form):
    _, headers = people.user()
    room = rooms.create()
    mine = client.post("/api/reservations", json=booking(room["id"]), headers=headers).get_json()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    end = start + timedelta(hours=1)
    for body, field in (
        ({"start_time": form(start), "end_time": end.isoformat()}, "start_time"),
        ({"start_time": start.isoformat(), "end_time": form(end)}, "end_time"),
    ):
        created = client.post("/api/reservations", json={**booking(room["id"]), **body}, headers=headers)
        assert created.status_code == 422 and [e["field"] for e in created.get_json()["errors"]] == [field], created.get_json()
        moved = client.put(f"/api/reservations/{mine['id']}", json=body, headers=headers)
        assert moved.status_code == 422 and [e["field"] for e in moved.get_json()["errors"]] == [field], moved.get_json()
    assert client.get("/api/reservations", headers=headers).get_json()["total"] == 1


# ISO 8601 forms with an offset that were always taken, and still are.
STILL_TAKEN_FORMS = {
    "lower-case-t-and-z": lambda moment: moment.strftime("%Y-%m-%dt%H:%M:%Sz"),
    "fraction": lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "no-seconds": lambda moment: moment.strftime("%Y-%m-%dT%H:%MZ"),
    "offset-without-colon": lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S+0000"),
    "space-for-t": lambda moment: moment.strftime("%Y-%m-%d %H:%M:%SZ"),
}


@pytest.mark.parametrize("form", STILL_TAKEN_FORMS.values(), ids=STILL_TAKEN_FORMS.keys())
def test_date_times_with_an_offset_in_other_iso_8601_forms_are_still_taken(client, people, rooms, form):
    _, headers = people.user()
    room = rooms.create()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    body = {**booking(room["id"]), "start_time": form(start), "end_time": form(start + timedelta(hours=1))}
    created = client.post("/api/reservations", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["start_time"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    # (in a query string a space stands for an unencoded "+" of the offset, so it cannot stand for the "T")
    listed = client.get("/api/reservations", query_string={"from": form(start).replace(" ", "T")}, headers=headers)
    assert listed.status_code == 200 and listed.get_json()["total"] == 1
    assert client.get(f"/api/reservations/room/{room['id']}?from=2030-03-01T09:00:00+01:00", headers=headers).status_code == 200
