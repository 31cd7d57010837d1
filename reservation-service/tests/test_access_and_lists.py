"""Object-level authorisation (BOLA), lists with filters, and room schedules."""

from __future__ import annotations

import pytest
from conftest import booking, slot


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_another_user_cannot_read_change_or_cancel_my_reservation(client, two_bookers, method):
    reservation = two_bookers["reservation"]
    response = getattr(client, method)(
        f"/api/reservations/{reservation['id']}", headers=two_bookers["bob"], json={"title": "Mine now"}
    )
    assert response.status_code == 403
    assert client.get(f"/api/reservations/{reservation['id']}", headers=two_bookers["alice"]).get_json() == reservation


def test_an_admin_reads_changes_and_cancels_anyones_reservation(client, people, two_bookers):
    _, admin = people.admin()
    reservation = two_bookers["reservation"]
    assert client.get(f"/api/reservations/{reservation['id']}", headers=admin).status_code == 200
    assert (
        client.put(f"/api/reservations/{reservation['id']}", json={"title": "Moved by admin"}, headers=admin).get_json()["title"]
        == "Moved by admin"
    )
    assert client.delete(f"/api/reservations/{reservation['id']}", headers=admin).status_code == 204


def test_users_list_only_their_own_reservations(client, two_bookers):
    client.post("/api/reservations", json=booking(two_bookers["room"]["id"], 4), headers=two_bookers["bob"])
    alice_page = client.get("/api/reservations", headers=two_bookers["alice"]).get_json()
    assert [r["id"] for r in alice_page["items"]] == [two_bookers["reservation"]["id"]]
    assert alice_page["total"] == 1 and alice_page["page"] == 1 and alice_page["per_page"] == 20
    other = two_bookers["alice_user"]["id"]
    assert client.get(f"/api/reservations?user_id={other}", headers=two_bookers["bob"]).status_code == 403


def test_admins_list_everyone_and_filter_by_user(client, people, two_bookers):
    _, admin = people.admin()
    client.post("/api/reservations", json=booking(two_bookers["room"]["id"], 4), headers=two_bookers["bob"])
    everyone = client.get("/api/reservations", headers=admin).get_json()
    assert everyone["total"] == 2
    bobs = client.get(f"/api/reservations?user_id={two_bookers['bob_user']['id']}", headers=admin).get_json()
    assert [r["user_id"] for r in bobs["items"]] == [two_bookers["bob_user"]["id"]]


def test_list_filters_room_status_and_time_window(client, people, rooms):
    _, headers = people.user()
    room_a, room_b = rooms.create(), rooms.create()
    early = client.post("/api/reservations", json=booking(room_a["id"], 0), headers=headers).get_json()
    late = client.post("/api/reservations", json=booking(room_a["id"], 10), headers=headers).get_json()
    other_room = client.post("/api/reservations", json=booking(room_b["id"], 0), headers=headers).get_json()
    client.delete(f"/api/reservations/{late['id']}", headers=headers)

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/reservations?{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return [r["id"] for r in response.get_json()["items"]]

    assert ids(f"room_id={room_a['id']}") == [early["id"], late["id"]]
    assert ids("status=cancelled") == [late["id"]]
    start, _ = slot(5)
    assert ids(f"from={start.replace('+', '%2B')}") == [late["id"]]
    assert ids(f"to={start}") == sorted([early["id"], other_room["id"]])  # an unencoded "+" still means an offset


@pytest.mark.parametrize("query", ["per_page=-1", "status=maybe", "from=2030-01-01T10:00:00", "room_id=abc", "colour=red"])
def test_bad_list_parameters_are_422(client, people, query):
    _, headers = people.user()
    assert client.get(f"/api/reservations?{query}", headers=headers).status_code == 422


def test_the_schedule_shows_confirmed_reservations_in_the_window_earliest_first(client, people, rooms, two_bookers):
    room = two_bookers["room"]
    later = client.post("/api/reservations", json=booking(room["id"], 6), headers=two_bookers["bob"]).get_json()
    cancelled = client.post("/api/reservations", json=booking(room["id"], 3), headers=two_bookers["bob"]).get_json()
    client.delete(f"/api/reservations/{cancelled['id']}", headers=two_bookers["bob"])
    start, _ = slot(-1)
    _, end = slot(20)
    response = client.get(
        f"/api/reservations/room/{room['id']}", query_string={"from": start, "to": end}, headers=two_bookers["bob"]
    )
    assert response.status_code == 200
    schedule = response.get_json()
    assert schedule["room_id"] == room["id"]
    assert [r["id"] for r in schedule["items"]] == [two_bookers["reservation"]["id"], later["id"]]
    # Someone else's booking shows its time and title, not its description or attendees.
    alices = schedule["items"][0]
    assert alices["title"] == "Planning" and alices["description"] is None and alices["attendees"] == []
    assert schedule["items"][1]["user_id"] == two_bookers["bob_user"]["id"]


def test_the_default_schedule_window_is_the_next_seven_days(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    soon = client.post("/api/reservations", json=booking(room["id"], 0), headers=headers).get_json()
    client.post("/api/reservations", json=booking(room["id"], 24 * 8), headers=headers)
    items = client.get(f"/api/reservations/room/{room['id']}", headers=headers).get_json()["items"]
    assert [r["id"] for r in items] == [soon["id"]]


def test_schedule_of_an_unknown_room_and_bad_windows(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    start, end = slot(0)
    assert (
        client.get(f"/api/reservations/room/{room['id']}", query_string={"from": end, "to": start}, headers=headers).status_code
        == 422
    )
    assert (
        client.get(
            f"/api/reservations/room/{room['id']}", query_string={"from": "2030-01-01T10:00:00"}, headers=headers
        ).status_code
        == 422
    )
    assert client.get("/api/reservations/room/abc", headers=headers).status_code == 404


def test_a_list_longer_than_the_count_cap_flags_its_total_as_an_estimate(client, people, rooms, monkeypatch):
    import servicekit.pagination

    _, headers = people.user()
    room = rooms.create()
    for hour in range(4):
        assert client.post("/api/reservations", json=booking(room["id"], hour), headers=headers).status_code == 201
    exact = client.get("/api/reservations?per_page=1", headers=headers).get_json()
    assert exact["total"] == 4 and exact["total_is_estimate"] is False and len(exact["items"]) == 1
    last = client.get("/api/reservations?per_page=3&page=2", headers=headers).get_json()
    assert last["total"] == 4 and last["total_is_estimate"] is False  # known from the last page, no count
    monkeypatch.setattr(servicekit.pagination, "COUNT_CAP", 2)
    capped = client.get("/api/reservations?per_page=1", headers=headers).get_json()
    assert capped["total_is_estimate"] is True and capped["total"] >= 3 and len(capped["items"]) == 1
