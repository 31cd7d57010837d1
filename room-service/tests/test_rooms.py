"""The room section of API.md: CRUD, filters, authorisation, validation and soft delete."""

from __future__ import annotations

import pytest
from conftest import room_body

PROBLEM = "application/problem+json"


def test_an_admin_creates_a_room_with_normalised_equipment(client, admin):
    response = client.post(
        "/api/rooms", json=room_body(name="Lovelace", equipment=["Projector", " projector ", "Whiteboard"]), headers=admin
    )
    assert response.status_code == 201
    room = response.get_json()
    assert set(room) == {
        "id",
        "name",
        "capacity",
        "location",
        "equipment",
        "description",
        "is_active",
        "timezone",
        "booking_policy",
        "created_at",
        "updated_at",
    }
    assert room["name"] == "Lovelace" and room["capacity"] == 8 and room["is_active"] is True
    assert room["equipment"] == ["projector", "whiteboard"]
    assert room["created_at"].endswith("+00:00")
    assert response.headers["Location"] == f"/api/rooms/{room['id']}"
    assert client.get(f"/api/rooms/{room['id']}", headers=admin).get_json() == room


def test_any_user_reads_rooms_but_only_admins_write(client, user, make_room):
    room = make_room()
    assert client.get("/api/rooms", headers=user).status_code == 200
    assert client.get(f"/api/rooms/{room['id']}", headers=user).status_code == 200
    assert client.post("/api/rooms", json=room_body(), headers=user).status_code == 403
    assert client.put(f"/api/rooms/{room['id']}", json={"capacity": 2}, headers=user).status_code == 403
    assert client.delete(f"/api/rooms/{room['id']}", headers=user).status_code == 403
    assert client.get(f"/api/rooms/{room['id']}", headers=user).get_json() == room


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/rooms"),
        ("get", "/api/rooms/1"),
        ("post", "/api/rooms"),
        ("put", "/api/rooms/1"),
        ("delete", "/api/rooms/1"),
        ("get", "/internal/rooms/1"),
    ],
)
def test_no_token_is_401(client, method, path):
    response = getattr(client, method)(path, json={})
    assert response.status_code == 401 and response.content_type == PROBLEM


def test_a_deactivated_users_token_is_refused_within_seconds(client, people):
    from servicekit.testing import wait_until

    account, headers = people.user()
    assert client.get("/api/rooms", headers=headers).status_code == 200
    people.deactivate(account["id"])
    wait_until(
        lambda: client.get("/api/rooms", headers=headers).status_code == 401, message="the deactivation to reach room-service"
    )


def test_names_are_unique_case_insensitively(client, admin, make_room):
    make_room(name="Turing")
    response = client.post("/api/rooms", json=room_body(name="turing"), headers=admin)
    assert response.status_code == 409 and response.content_type == PROBLEM
    other = make_room(name="Hopper")
    assert client.put(f"/api/rooms/{other['id']}", json={"name": "TURING"}, headers=admin).status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (room_body(capacity="8"), "capacity"),
        (room_body(capacity=0), "capacity"),
        (room_body(capacity=10_001), "capacity"),
        (room_body(capacity=2.5), "capacity"),
        (room_body(equipment="projector"), "equipment"),
        (room_body(equipment=[""]), "equipment.0"),
        (room_body(name="x" * 101), "name"),
        (room_body(name="  "), "name"),
        (room_body(is_active="yes"), "is_active"),
        ({**room_body(), "id": 5}, "id"),
        ({**room_body(), "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"capacity": 3}, "name"),
    ],
    ids=[
        "string-capacity",
        "zero-capacity",
        "huge-capacity",
        "float-capacity",
        "equipment-not-a-list",
        "empty-equipment-name",
        "long-name",
        "blank-name",
        "string-bool",
        "id-not-writable",
        "timestamps-not-writable",
        "missing-name",
    ],
)
def test_invalid_rooms_are_422_naming_the_field(client, admin, body, field):
    response = client.post("/api/rooms", json=body, headers=admin)
    assert response.status_code == 422 and response.content_type == PROBLEM
    assert field in [e["field"] for e in response.get_json()["errors"]]


@pytest.mark.parametrize("raw", [b"{oops", b"[]", b"null"])
def test_malformed_or_non_object_bodies_are_400(client, admin, raw):
    assert client.post("/api/rooms", data=raw, content_type="application/json", headers=admin).status_code == 400


def test_put_changes_any_subset_and_rejects_nulls(client, admin, make_room):
    room = make_room()
    response = client.put(f"/api/rooms/{room['id']}", json={"capacity": 20, "equipment": ["Video Conference"]}, headers=admin)
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["capacity"] == 20 and updated["equipment"] == ["video conference"] and updated["name"] == room["name"]
    assert updated["updated_at"] > room["updated_at"]
    assert client.put(f"/api/rooms/{room['id']}", json={"capacity": None}, headers=admin).status_code == 422
    assert client.put(f"/api/rooms/{room['id']}", json={"deleted_at": None}, headers=admin).status_code == 422


def test_filters_combine_and_equipment_must_all_match(client, user, make_room):
    big = make_room(capacity=20, equipment=["Projector", "Whiteboard"], location="Building A, floor 1")
    small = make_room(capacity=4, equipment=["projector"], location="Building B")
    closed = make_room(capacity=30, equipment=["whiteboard", "projector"], is_active=False, location="Building A, floor 2")

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/rooms?{query}", headers=user)
        assert response.status_code == 200, response.get_json()
        return [r["id"] for r in response.get_json()["items"]]

    assert ids("min_capacity=10") == [big["id"], closed["id"]]
    assert ids("equipment=PROJECTOR") == [big["id"], small["id"], closed["id"]]
    assert ids("equipment=projector&equipment=whiteboard") == [big["id"], closed["id"]]
    assert ids("equipment=projector&equipment=teleporter") == []
    assert ids("location=building a") == [big["id"], closed["id"]]
    assert ids("is_active=false") == [closed["id"]]
    assert ids("is_active=true&min_capacity=10&equipment=whiteboard") == [big["id"]]
    assert ids("location=%25") == []  # wildcards are taken literally


def test_an_equipment_filter_totals_past_the_end_and_past_the_count_cap(client, user, make_room, monkeypatch):
    """The equipment names are one bound array: the count of a page past the end and the planner's estimate
    (EXPLAIN of the same statement) take it as the page does."""
    import servicekit.pagination

    made = [make_room(equipment=["Projector", "Whiteboard"])["id"] for _ in range(3)]
    make_room(equipment=["projector"])
    query = "equipment=projector&equipment=whiteboard&per_page=1"
    past = client.get(f"/api/rooms?{query}&page=9", headers=user).get_json()
    assert (past["items"], past["total"], past["total_is_estimate"]) == ([], 3, False)
    monkeypatch.setattr(servicekit.pagination, "COUNT_CAP", 1)
    capped = client.get(f"/api/rooms?{query}", headers=user)
    assert capped.status_code == 200, capped.get_json()
    assert capped.get_json()["total_is_estimate"] is True and capped.get_json()["total"] >= 2
    assert [r["id"] for r in capped.get_json()["items"]] == made[:1]


def test_pages(client, user, make_room):
    made = [make_room()["id"] for _ in range(3)]
    page = client.get("/api/rooms?page=2&per_page=2", headers=user).get_json()
    assert page["total"] == 3 and page["page"] == 2 and page["per_page"] == 2
    assert [r["id"] for r in page["items"]] == made[2:]


@pytest.mark.parametrize(
    "query", ["per_page=0", "page=0", "min_capacity=abc", "min_capacity=0", "is_active=maybe", "colour=blue"]
)
def test_bad_list_parameters_are_422(client, user, query):
    assert client.get(f"/api/rooms?{query}", headers=user).status_code == 422


def test_non_numeric_and_unknown_ids_are_404(client, admin):
    for path in ("/api/rooms/abc", "/api/rooms/999999999", "/api/rooms/99999999999999999999"):
        response = client.get(path, headers=admin)
        assert response.status_code == 404 and response.content_type == PROBLEM


def test_delete_is_soft_the_room_is_404_everywhere_and_its_name_is_free(app, client, admin, make_room):
    room = make_room(name="Ephemeral")
    assert client.delete(f"/api/rooms/{room['id']}", headers=admin).status_code == 204
    assert client.get(f"/api/rooms/{room['id']}", headers=admin).status_code == 404
    assert client.put(f"/api/rooms/{room['id']}", json={"capacity": 3}, headers=admin).status_code == 404
    assert client.delete(f"/api/rooms/{room['id']}", headers=admin).status_code == 404
    assert room["id"] not in [r["id"] for r in client.get("/api/rooms", headers=admin).get_json()["items"]]
    from app.models import Room
    from servicekit.db import db

    with app.app_context():
        kept = db.session.get(Room, room["id"])
        assert kept is not None and kept.deleted_at is not None
    assert client.post("/api/rooms", json=room_body(name="Ephemeral"), headers=admin).status_code == 201


def test_the_internal_path_shows_deleted_and_inactive_rooms_to_peers(client, user, admin, make_room):
    room = make_room(is_active=False)
    internal = client.get(f"/internal/rooms/{room['id']}", headers=user).get_json()
    assert internal["deleted"] is False and internal["is_active"] is False and internal["capacity"] == room["capacity"]
    client.delete(f"/api/rooms/{room['id']}", headers=admin)
    assert client.get(f"/internal/rooms/{room['id']}", headers=user).get_json()["deleted"] is True
    assert client.get("/internal/rooms/999999999", headers=user).status_code == 404


def test_the_rooms_gauge_counts_rooms_by_state(client, admin, make_room):
    make_room()
    gone = make_room()
    make_room(is_active=False)
    client.delete(f"/api/rooms/{gone['id']}", headers=admin)
    metrics = client.get("/metrics").get_data(as_text=True)
    for state, count in (("active", 1), ("inactive", 1), ("deleted", 1)):
        assert f'rooms_total{{state="{state}"}} {count}.0' in metrics
