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


def test_a_failing_message_ends_its_batch_and_every_message_is_applied_once_in_order(app, topics):
    """Ten events in one partition, taken as one batch; the fifth fails once. The four before it are
    committed with the batch, the partition is rewound to the fifth, and the rest follow in order."""
    key = uuid.uuid4().hex
    applied: list[int] = []
    failed_once: set[int] = set()

    def on_updated(envelope):
        data = envelope["data"]
        if data.get("key") != key:
            return
        if data["n"] == 4 and 4 not in failed_once:
            failed_once.add(4)
            raise RuntimeError("a passing failure")
        applied.append(data["n"])

    for n in range(10):
        envelope = make_envelope("room.updated", {"key": key, "n": n}, "kit-test")
        topics.produce("room-events", key, json.dumps(envelope).encode())
    consumer = EventConsumer(app, f"kit-{uuid.uuid4().hex[:6]}", {"room-events": {"room.updated": on_updated}}, batch_size=50)
    consumer.start()
    try:
        wait_until(lambda: len(applied) >= 10, message="every event to be applied")
    finally:
        consumer.stop()
    assert applied == list(range(10)) and failed_once == {4}
