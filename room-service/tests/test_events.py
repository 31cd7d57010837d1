"""room-events: one event per committed change, field by field, none for a rejected one."""

from __future__ import annotations

from conftest import room_body
from sqlalchemy import func, select

from servicekit.db import OutboxEvent, db


def test_create_update_deactivate_delete_each_publish_one_event(client, admin, topics):
    room = client.post("/api/rooms", json=room_body(), headers=admin).get_json()
    updated = client.put(f"/api/rooms/{room['id']}", json={"capacity": 12}, headers=admin).get_json()
    client.put(f"/api/rooms/{room['id']}", json={"capacity": 12}, headers=admin)  # no change: no event
    closed = client.put(f"/api/rooms/{room['id']}", json={"is_active": False}, headers=admin).get_json()
    client.delete(f"/api/rooms/{room['id']}", headers=admin)
    events = topics.collect("room-events", lambda key, value: key == str(room["id"]), expect=4, settle=1.5)
    assert [e["event_type"] for e in events] == ["room.created", "room.updated", "room.updated", "room.deleted"]
    for event in events:
        assert set(event) == {"event_id", "event_type", "occurred_at", "producer", "version", "data"}
        assert event["producer"] == "room-service" and event["version"] == 1
    assert events[0]["data"] == room
    assert events[1]["data"] == updated
    assert events[2]["data"] == closed and closed["is_active"] is False
    assert events[3]["data"]["id"] == room["id"]
    assert len({e["event_id"] for e in events}) == 4


def test_a_rejected_change_writes_no_event(app, client, admin):
    room = client.post("/api/rooms", json=room_body(name="Unique"), headers=admin).get_json()
    with app.app_context():
        before = db.session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()
    assert client.post("/api/rooms", json=room_body(name="UNIQUE"), headers=admin).status_code == 409
    assert client.put(f"/api/rooms/{room['id']}", json={"capacity": 0}, headers=admin).status_code == 422
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one() == before
