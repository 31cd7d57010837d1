"""Concurrency control on reservations: ETag on GET, If-None-Match → 304, If-Match on PUT/DELETE → 412."""

from __future__ import annotations

from conftest import booking

from servicekit.testing import resolved, statuses_of_writes_racing_at_a_row_lock

PROBLEM = "application/problem+json"


def test_get_sends_an_etag_and_if_none_match_with_it_is_304_without_body(client, people, rooms):
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    first = client.get(f"/api/reservations/{created['id']}", headers=headers)
    etag = first.headers["ETag"]
    again = client.get(f"/api/reservations/{created['id']}", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert client.get(f"/api/reservations/{created['id']}", headers={**headers, "If-None-Match": '"x"'}).status_code == 200
    _, stranger = people.user()
    assert client.get(f"/api/reservations/{created['id']}", headers={**stranger, "If-None-Match": etag}).status_code == 403


def test_put_with_the_current_etag_succeeds_and_answers_the_new_one(client, people, rooms):
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    etag = client.get(f"/api/reservations/{created['id']}", headers=headers).headers["ETag"]
    updated = client.put(f"/api/reservations/{created['id']}", json={"title": "Mine"}, headers={**headers, "If-Match": etag})
    assert updated.status_code == 200 and updated.get_json()["sequence"] == 1
    assert updated.headers["ETag"] == client.get(f"/api/reservations/{created['id']}", headers=headers).headers["ETag"] != etag


def test_put_with_a_stale_if_match_is_412_and_changes_nothing(client, people, rooms, topics):
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    stale = client.get(f"/api/reservations/{created['id']}", headers=headers).headers["ETag"]
    client.put(f"/api/reservations/{created['id']}", json={"title": "First editor"}, headers=headers)
    before = client.get(f"/api/reservations/{created['id']}", headers=headers).get_json()
    start, end = booking(0, 4)["start_time"], booking(0, 4)["end_time"]
    for change in ({"title": "Second editor"}, {"start_time": start, "end_time": end}):
        refused = client.put(f"/api/reservations/{created['id']}", json=change, headers={**headers, "If-Match": stale})
        assert refused.status_code == 412 and refused.content_type == PROBLEM
        assert refused.get_json()["status"] == 412
    assert client.get(f"/api/reservations/{created['id']}", headers=headers).get_json() == before
    events = topics.collect("reservation-events", lambda key, value: key == str(created["id"]), expect=3, settle=1.5)
    assert [e["event_type"] for e in events] == ["reservation.created", "reservation.updated"]


def test_delete_with_a_stale_if_match_is_412_and_the_booking_stays(client, people, rooms):
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    stale = client.get(f"/api/reservations/{created['id']}", headers=headers).headers["ETag"]
    client.put(f"/api/reservations/{created['id']}", json={"description": "agenda"}, headers=headers)
    refused = client.delete(f"/api/reservations/{created['id']}", headers={**headers, "If-Match": stale})
    assert refused.status_code == 412 and refused.content_type == PROBLEM
    assert client.get(f"/api/reservations/{created['id']}", headers=headers).get_json()["status"] == "confirmed"
    current = client.get(f"/api/reservations/{created['id']}", headers=headers).headers["ETag"]
    assert client.delete(f"/api/reservations/{created['id']}", headers={**headers, "If-Match": current}).status_code == 204
    assert client.get(f"/api/reservations/{created['id']}", headers=headers).get_json()["status"] == "cancelled"


def test_without_if_match_writes_behave_as_before(client, people, rooms):
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    assert client.put(f"/api/reservations/{created['id']}", json={"title": "A"}, headers=headers).status_code == 200
    assert (
        client.put(f"/api/reservations/{created['id']}", json={"title": "B"}, headers={**headers, "If-Match": "*"}).status_code
        == 200
    )
    assert client.delete(f"/api/reservations/{created['id']}", headers=headers).status_code == 204


def test_two_editors_with_the_same_etag_one_wins_the_other_gets_412(app, config, client, people, rooms):
    """Both PUTs are held at the row lock (taken here first), after their early checks have passed:
    only the comparison made under the lock lets exactly one of them through."""
    _, headers = people.user()
    created = client.post("/api/reservations", json=booking(rooms.create()["id"]), headers=headers).get_json()
    etag = client.get(f"/api/reservations/{created['id']}", headers=headers).headers["ETag"]

    def edit(title: str):
        return app.test_client().put(
            f"/api/reservations/{created['id']}", json={"title": title}, headers={**headers, "If-Match": etag}
        )

    edits = [lambda: edit("Alice's"), lambda: edit("Bob's")]
    assert statuses_of_writes_racing_at_a_row_lock(config.database_url, "reservations", created["id"], edits) == [200, 412]
    final = client.get(f"/api/reservations/{created['id']}", headers=headers).get_json()
    assert final["sequence"] == 1 and final["title"] in ("Alice's", "Bob's")


def test_the_spec_documents_etags_304_412_and_the_feeds(app):
    spec = app.test_client().get("/apispec.json").get_json()
    item = spec["paths"]["/api/reservations/{reservation_id}"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"] and "304" in item["get"]["responses"]
    assert {"$ref": "#/components/parameters/IfNoneMatch"} in item["get"]["parameters"]
    for method in ("put", "delete"):
        assert "412" in item[method]["responses"]
        assert {"$ref": "#/components/parameters/IfMatch"} in item[method]["parameters"]
    assert set(spec["components"]["parameters"]) >= {"IfMatch", "IfNoneMatch"}
    for path in ("/api/calendar/me.ics", "/api/calendar/rooms/{room_id}.ics"):
        feed = spec["paths"][path]["get"]
        answer = resolved(spec, feed["responses"]["200"])
        assert feed["security"] == [] and "text/calendar" in answer["content"]
        assert "304" in feed["responses"] and "ETag" in answer["headers"]
    assert spec["paths"]["/api/calendar/tokens"]["post"]["responses"]["201"]
    assert "sequence" in spec["components"]["schemas"]["ReservationOut"]["properties"]
