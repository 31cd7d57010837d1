"""Concurrency control on rooms: ETag on GET, If-None-Match → 304, If-Match on PUT/DELETE → 412."""

from __future__ import annotations

from servicekit.testing import statuses_of_writes_racing_at_a_row_lock

PROBLEM = "application/problem+json"


def test_get_sends_an_etag_and_if_none_match_with_it_is_304_without_body(client, user, make_room):
    room = make_room()
    first = client.get(f"/api/rooms/{room['id']}", headers=user)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(f"/api/rooms/{room['id']}", headers={**user, "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert client.get(f"/api/rooms/{room['id']}", headers={**user, "If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(f"/api/rooms/{room['id']}", headers={**user, "If-None-Match": '"other"'}).status_code == 200


def test_a_change_gives_a_new_etag_and_the_old_one_no_longer_304s(client, admin, make_room):
    room = make_room()
    etag = client.get(f"/api/rooms/{room['id']}", headers=admin).headers["ETag"]
    updated = client.put(f"/api/rooms/{room['id']}", json={"capacity": 3}, headers={**admin, "If-Match": etag})
    assert updated.status_code == 200 and updated.headers["ETag"] != etag
    current = client.get(f"/api/rooms/{room['id']}", headers={**admin, "If-None-Match": etag})
    assert current.status_code == 200 and current.headers["ETag"] == updated.headers["ETag"]


def test_put_with_a_stale_if_match_is_412_and_changes_nothing(client, admin, make_room):
    room = make_room()
    stale = client.get(f"/api/rooms/{room['id']}", headers=admin).headers["ETag"]
    assert client.put(f"/api/rooms/{room['id']}", json={"capacity": 4}, headers=admin).status_code == 200
    before = client.get(f"/api/rooms/{room['id']}", headers=admin).get_json()
    refused = client.put(f"/api/rooms/{room['id']}", json={"name": "Overwritten"}, headers={**admin, "If-Match": stale})
    assert refused.status_code == 412 and refused.content_type == PROBLEM
    assert refused.get_json()["status"] == 412
    assert client.get(f"/api/rooms/{room['id']}", headers=admin).get_json() == before


def test_delete_with_a_stale_if_match_is_412_and_the_room_stays(client, admin, make_room):
    room = make_room()
    stale = client.get(f"/api/rooms/{room['id']}", headers=admin).headers["ETag"]
    client.put(f"/api/rooms/{room['id']}", json={"description": "Renovated"}, headers=admin)
    refused = client.delete(f"/api/rooms/{room['id']}", headers={**admin, "If-Match": stale})
    assert refused.status_code == 412 and refused.content_type == PROBLEM
    assert client.get(f"/api/rooms/{room['id']}", headers=admin).status_code == 200
    current = client.get(f"/api/rooms/{room['id']}", headers=admin).headers["ETag"]
    assert client.delete(f"/api/rooms/{room['id']}", headers={**admin, "If-Match": current}).status_code == 204


def test_without_if_match_or_with_a_star_writes_go_ahead(client, admin, make_room):
    room = make_room()
    assert client.put(f"/api/rooms/{room['id']}", json={"capacity": 5}, headers=admin).status_code == 200
    assert client.put(f"/api/rooms/{room['id']}", json={"capacity": 6}, headers={**admin, "If-Match": "*"}).status_code == 200


def test_two_writers_with_the_same_etag_one_wins_the_other_gets_412(app, config, client, admin, make_room):
    """Both requests are held at the row lock (taken here first), so both have passed any check made
    before the lock: only a comparison under the lock lets exactly one through."""
    room = make_room()
    etag = client.get(f"/api/rooms/{room['id']}", headers=admin).headers["ETag"]

    def write(capacity: int):
        return app.test_client().put(f"/api/rooms/{room['id']}", json={"capacity": capacity}, headers={**admin, "If-Match": etag})

    writes = [lambda: write(11), lambda: write(12)]
    assert statuses_of_writes_racing_at_a_row_lock(config.database_url, "rooms", room["id"], writes) == [200, 412]


def test_the_spec_documents_etags_304_and_412(app):
    spec = app.test_client().get("/apispec.json").get_json()
    item = spec["paths"]["/api/rooms/{room_id}"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"] and "304" in item["get"]["responses"]
    for method in ("put", "delete"):
        assert "412" in item[method]["responses"]
        assert {"$ref": "#/components/parameters/IfMatch"} in item[method]["parameters"]
