"""Forged events (issue 9): an envelope on `room-events` that does not come from room-service is parked,
never applied, so nobody can cancel other people's bookings by writing to the topic."""

from __future__ import annotations

import json

from conftest import booking
from sqlalchemy import select

from servicekit.db import ParkedEvent, db
from servicekit.events import make_envelope
from servicekit.testing import wait_until


def test_a_forged_room_deleted_cancels_nothing_and_is_parked(client, app, people, rooms, topics):
    _, headers = people.user()
    room = rooms.create()
    kept = client.post("/api/reservations", json=booking(room["id"], 0), headers=headers).get_json()
    forged = make_envelope("room.deleted", room, "user-service")  # any producer but the topic's owner
    topics.produce("room-events", str(room["id"]), json.dumps(forged).encode())

    def parked():
        with app.app_context():
            return db.session.execute(
                select(ParkedEvent).where(ParkedEvent.value.contains(forged["event_id"]), ParkedEvent.error.contains("own"))
            ).first()

    wait_until(parked, message="the forged envelope to be parked")
    assert client.get(f"/api/reservations/{kept['id']}", headers=headers).get_json()["status"] == "confirmed"
    # The genuine event from room-service still works.
    rooms.publish("room.deleted", room)
    wait_until(
        lambda: client.get(f"/api/reservations/{kept['id']}", headers=headers).get_json()["status"] == "cancelled",
        message="the genuine deletion",
    )
