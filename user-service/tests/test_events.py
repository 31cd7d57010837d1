"""user-events through the outbox, and reservation-events consumed idempotently."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app import create_app
from app.models import BookingRecord
from devstack.components import Broker
from devstack.processes import free_port
from servicekit.db import OutboxEvent, ParkedEvent, ProcessedEvent, db
from servicekit.events import make_envelope
from servicekit.outbox import OutboxRelay
from servicekit.testing import wait_until


@pytest.fixture
def background(app):
    """The outbox relay and the consumer, as gunicorn runs them."""
    background = app.extensions["servicekit.background"]
    background.start()
    yield background
    background.stop()


def test_registration_publishes_user_registered_in_the_documented_envelope(client, accounts, topics, background):
    user = accounts.register()
    events = topics.collect(
        "user-events",
        lambda key, value: key == str(user["id"]) and value.get("data", {}).get("email") == user["email"],
        settle=1.0,
    )
    assert len(events) == 1
    event = events[0]
    assert set(event) == {"event_id", "event_type", "occurred_at", "producer", "version", "data"}
    assert event["event_type"] == "user.registered" and event["producer"] == "user-service" and event["version"] == 1
    assert event["data"] == user
    assert datetime.fromisoformat(event["occurred_at"]).tzinfo is not None


def test_deactivation_publishes_user_updated_then_user_deactivated(client, accounts, topics, background):
    _, admin_headers = accounts.admin_with_token()
    user = accounts.register()
    client.put(f"/api/users/{user['id']}", json={"is_active": False}, headers=admin_headers)
    events = topics.collect("user-events", lambda key, value: key == str(user["id"]), expect=3, settle=0.5)
    assert [e["event_type"] for e in events] == ["user.registered", "user.updated", "user.deactivated"]
    assert events[2]["data"]["is_active"] is False


def test_a_rejected_change_writes_no_event(app, client, accounts):
    user = accounts.register()
    with app.app_context():
        before = db.session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()
    assert (
        client.post(
            "/api/auth/register", json={"email": user["email"], "password": "long enough", "full_name": "Dup"}
        ).status_code
        == 409
    )
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one() == before


def test_events_written_while_the_broker_is_down_arrive_exactly_once_when_it_returns(config, client, accounts, tmp_path):
    port = free_port()
    broker = Broker(port, tmp_path)
    broker.start()
    broker.stop()  # the broker is down from here on
    app = create_app(config.__class__(**{**config.__dict__, "kafka_bootstrap_servers": broker.bootstrap}))
    user = accounts.register()  # the API call succeeds without the broker
    relay = OutboxRelay(app)
    relay.start()
    try:
        with app.app_context():
            row = db.session.execute(select(OutboxEvent).where(OutboxEvent.key == str(user["id"]))).scalar_one()
            assert row.published_at is None
        broker = Broker(port, tmp_path)
        broker.start()
        from servicekit.testing import TopicReader

        reader = TopicReader(broker.bootstrap)
        events = reader.collect("user-events", lambda key, value: key == str(user["id"]), timeout=40, settle=3.0)
        assert [e["event_id"] for e in events] == [row.event_id]

        def published():
            with app.app_context():
                return db.session.get(OutboxEvent, row.id).published_at is not None

        wait_until(published, message="the outbox row to be marked published")
    finally:
        relay.stop()
        broker.stop()


def _reservation_envelope(user_id: int, status: str = "confirmed", event_type: str = "reservation.created") -> dict:
    start = datetime.now(UTC) + timedelta(days=1)
    data = {
        "id": str(uuid.uuid4()),
        "room_id": 1,
        "user_id": user_id,
        "title": "Planning",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
        "status": status,
    }
    return make_envelope(event_type, data, "reservation-service")


def test_the_same_reservation_event_twice_has_one_effect(app, client, accounts, topics, background):
    admin, headers = accounts.admin_with_token()
    user = accounts.register()
    envelope = _reservation_envelope(user["id"])
    for _ in range(2):
        topics.produce("reservation-events", envelope["data"]["id"], json.dumps(envelope).encode())

    def processed():
        with app.app_context():
            return db.session.execute(
                select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.event_id == envelope["event_id"])
            ).scalar_one()

    wait_until(processed, message="the reservation event to be processed")
    # A later event for the same user proves the duplicate behind it was handled (same partition, in order).
    marker = _reservation_envelope(user["id"], status="cancelled", event_type="reservation.cancelled")
    topics.produce(
        "reservation-events",
        envelope["data"]["id"],
        json.dumps(marker | {"data": {**envelope["data"], "status": "cancelled"}}).encode(),
    )
    stats = wait_until(
        lambda: (
            (s := client.get(f"/api/users/{user['id']}", headers=headers).get_json()["booking_stats"])["cancelled_reservations"]
            == 1
            and s
        ),
        message="the cancellation to be applied",
    )
    assert stats["total_reservations"] == 1
    with app.app_context():
        assert (
            db.session.execute(
                select(func.count()).select_from(BookingRecord).where(BookingRecord.user_id == user["id"])
            ).scalar_one()
            == 1
        )


def test_booking_stats_count_upcoming_and_cancelled_reservations(client, accounts, topics, background):
    _, headers = accounts.admin_with_token()
    user = accounts.register()
    confirmed = _reservation_envelope(user["id"])
    cancelled = _reservation_envelope(user["id"], status="cancelled", event_type="reservation.cancelled")
    for envelope in (confirmed, cancelled):
        topics.produce("reservation-events", envelope["data"]["id"], json.dumps(envelope).encode())
    stats = wait_until(
        lambda: (
            (s := client.get(f"/api/users/{user['id']}", headers=headers).get_json()["booking_stats"])["total_reservations"] == 2
            and s
        ),
        message="both reservation events to be applied",
    )
    assert stats == {
        "total_reservations": 2,
        "confirmed_reservations": 1,
        "upcoming_reservations": 1,
        "cancelled_reservations": 1,
    }


def test_a_poison_message_is_parked_and_does_not_block_the_partition(app, client, accounts, topics, background):
    _, headers = accounts.admin_with_token()
    user = accounts.register()
    key = str(uuid.uuid4())
    topics.produce("reservation-events", key, b"this is not an event")
    good = _reservation_envelope(user["id"])
    topics.produce("reservation-events", key, json.dumps(good).encode())

    def parked():
        with app.app_context():
            return db.session.execute(select(ParkedEvent).where(ParkedEvent.key == key)).scalar_one_or_none()

    row = wait_until(parked, message="the poison message to be parked")
    assert row.value == "this is not an event" and row.topic == "reservation-events"
    wait_until(
        lambda: client.get(f"/api/users/{user['id']}", headers=headers).get_json()["booking_stats"]["total_reservations"] == 1,
        message="the next message on the partition to be applied",
    )
