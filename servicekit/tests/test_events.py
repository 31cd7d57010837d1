"""The outbox relay and the consumer runner against the real database and broker."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import func, select

from servicekit.auth import authenticate, revocation_handlers
from servicekit.consumer import EventConsumer
from servicekit.db import OutboxEvent, RevokedUser, db
from servicekit.events import make_envelope, record_event
from servicekit.outbox import OutboxRelay
from servicekit.problems import Unauthorized
from servicekit.testing import wait_until


def test_events_of_one_key_are_published_in_commit_order_by_two_relays(app, topics):
    key = uuid.uuid4().hex
    with app.app_context():
        for n in range(12):
            record_event("room-events", key, "room.updated", {"n": n}, "kit-test")
            db.session.commit()
    relays = [OutboxRelay(app, batch_size=3), OutboxRelay(app, batch_size=3)]
    for relay in relays:
        relay.start()
    try:
        events = topics.collect("room-events", lambda k, v: k == key, expect=12, settle=1.5)
    finally:
        for relay in relays:
            relay.stop()
    assert [e["data"]["n"] for e in events] == list(range(12))  # in order, none twice
    with app.app_context():
        assert (
            db.session.execute(
                select(func.count()).where(OutboxEvent.key == key, OutboxEvent.published_at.is_(None))
            ).scalar_one()
            == 0
        )


def test_a_rolled_back_change_leaves_no_event(app):
    key = uuid.uuid4().hex
    with app.app_context():
        record_event("room-events", key, "room.created", {}, "kit-test")
        db.session.rollback()
        assert db.session.execute(select(func.count()).where(OutboxEvent.key == key)).scalar_one() == 0


def test_deactivation_events_revoke_tokens_within_seconds(app, topics):
    consumer = EventConsumer(app, f"kit-{uuid.uuid4().hex[:6]}", {"user-events": revocation_handlers()})
    consumer.start()
    user_id = 900000 + uuid.uuid4().int % 100000
    try:
        envelope = make_envelope("user.deactivated", {"id": user_id, "is_active": False}, "user-service")
        topics.produce("user-events", str(user_id), json.dumps(envelope).encode())

        def revoked():
            with app.app_context():
                return db.session.get(RevokedUser, str(user_id)) is not None

        wait_until(revoked, message="the deactivation to be recorded")
        with app.test_request_context(headers={"Authorization": f"Bearer {user_id}"}):
            try:
                authenticate()
                raised = False
            except Unauthorized:
                raised = True
        assert raised
        reactivated = make_envelope("user.updated", {"id": user_id, "is_active": True}, "user-service")
        topics.produce("user-events", str(user_id), json.dumps(reactivated).encode())
        wait_until(lambda: not revoked(), message="the reactivation to lift the revocation")
    finally:
        consumer.stop()


def test_a_redelivered_event_is_not_applied_again(app, topics):
    # A handler with a visible effect (one call, one entry), where an upsert would hide a second apply.
    applied: list[str] = []
    key = uuid.uuid4().hex
    consumer = EventConsumer(
        app,
        f"kit-{uuid.uuid4().hex[:6]}",
        {"room-events": {"room.updated": lambda e: applied.append(e["event_id"]) if e["data"].get("tag") == key else None}},
    )
    consumer.start()
    try:
        twice = json.dumps(make_envelope("room.updated", {"tag": key}, "kit-test")).encode()
        marker = make_envelope("room.updated", {"tag": key}, "kit-test")
        for value in (twice, twice, json.dumps(marker).encode()):  # one key: one partition, in this order
            topics.produce("room-events", key, value)
        wait_until(lambda: marker["event_id"] in applied, message="the marker event to be handled")
    finally:
        consumer.stop()
    assert len(applied) == 2 and applied[-1] == marker["event_id"]


def test_a_rolled_back_change_never_reaches_the_topic(app, topics):
    key = uuid.uuid4().hex
    with app.app_context():
        record_event("room-events", key, "room.deleted", {"rolled": "back"}, "kit-test")
        db.session.rollback()
        record_event("room-events", key, "room.updated", {"committed": True}, "kit-test")
        db.session.commit()
    relay = OutboxRelay(app)
    relay.start()
    try:
        events = topics.collect("room-events", lambda k, v: k == key, expect=1, settle=1.5)
    finally:
        relay.stop()
    assert [e["event_type"] for e in events] == ["room.updated"]
