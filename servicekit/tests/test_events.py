"""The outbox relay and the consumer runner against the real database and broker."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import func, select

from servicekit.auth import authenticate, revocation_handlers
from servicekit.consumer import EventConsumer
from servicekit.db import OutboxEvent, ParkedEvent, RevokedUser, db, utcnow
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


def _authenticates(app, token: str) -> bool:
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        try:
            authenticate()
            return True
        except Unauthorized:
            return False


def test_deactivation_events_revoke_tokens_within_seconds(app, topics):
    consumer = EventConsumer(
        app, f"kit-{uuid.uuid4().hex[:6]}", {"user-events": revocation_handlers()}, owners={"user-events": "user-service"}
    )
    consumer.start()
    user_id = 900000 + uuid.uuid4().int % 100000
    old_token = f"{user_id}@{time.time() - 60}"
    try:
        assert _authenticates(app, old_token)
        envelope = make_envelope("user.deactivated", {"id": user_id, "is_active": False}, "user-service")
        topics.produce("user-events", str(user_id), json.dumps(envelope).encode())
        wait_until(lambda: not _authenticates(app, old_token), timeout=10, message="the deactivation to apply")
        reactivated = make_envelope("user.updated", {"id": user_id, "is_active": True}, "user-service")
        topics.produce("user-events", str(user_id), json.dumps(reactivated).encode())
        wait_until(lambda: _authenticates(app, f"{user_id}@{time.time()}"), timeout=10, message="the reactivation to apply")
        assert not _authenticates(app, old_token)  # tokens from before the deactivation stay dead
    finally:
        consumer.stop()


def test_a_role_change_revokes_older_tokens_only(app, topics):
    consumer = EventConsumer(
        app, f"kit-{uuid.uuid4().hex[:6]}", {"user-events": revocation_handlers()}, owners={"user-events": "user-service"}
    )
    consumer.start()
    user_id = 900000 + uuid.uuid4().int % 100000
    changed_at = time.time()
    try:
        data = {"id": user_id, "is_active": True, "role": "user", "sessions_revoked_at": utcnow().isoformat()}
        topics.produce("user-events", str(user_id), json.dumps(make_envelope("user.updated", data, "user-service")).encode())
        wait_until(lambda: not _authenticates(app, f"{user_id}@{changed_at - 5}"), timeout=10, message="the cut-off")
        assert _authenticates(app, f"{user_id}@{time.time() + 1}")
    finally:
        consumer.stop()


def test_an_envelope_from_a_producer_that_does_not_own_the_topic_is_parked_unapplied(app, topics):
    group = f"kit-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(app, group, {"user-events": revocation_handlers()}, owners={"user-events": "user-service"})
    consumer.start()
    user_id = 900000 + uuid.uuid4().int % 100000
    try:
        forged = make_envelope("user.deactivated", {"id": user_id, "is_active": False}, "room-service")
        topics.produce("user-events", str(user_id), json.dumps(forged).encode())

        def parked():
            with app.app_context():
                return db.session.execute(
                    select(ParkedEvent).where(ParkedEvent.consumer_group == group, ParkedEvent.error.contains("does not own"))
                ).first()

        wait_until(parked, timeout=20, message="the forged envelope to be parked")
        with app.app_context():
            assert db.session.get(RevokedUser, str(user_id)) is None
        assert _authenticates(app, f"{user_id}@{time.time()}")
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
        owners={"room-events": "kit-test"},
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


def test_a_consumer_needs_an_owner_for_every_topic(app):
    with pytest.raises(ValueError, match="user-events"):
        EventConsumer(app, "kit-x", {"user-events": revocation_handlers()}, owners={})


def _effects_table() -> None:
    """A table the test handlers write to: their effects in the database, committed or rolled back with the batch."""
    from sqlalchemy import text

    db.session.execute(
        text("CREATE TABLE IF NOT EXISTS kit_test_effects (id bigserial PRIMARY KEY, key text NOT NULL, n integer NOT NULL)")
    )
    db.session.commit()


def _effects(app, key: str) -> list[int]:
    from sqlalchemy import text

    with app.app_context():
        return list(db.session.execute(text("SELECT n FROM kit_test_effects WHERE key = :k ORDER BY id"), {"k": key}).scalars())


def test_a_failing_message_ends_its_batch_and_every_message_is_applied_once_in_order(app, topics):
    """Ten events in one partition, taken as one batch; the fifth fails twice. Applying the batch at once fails
    and is rolled back; one by one, the four before the fifth are committed, the partition is rewound to the
    fifth, and the rest follow in order. In the database every event's effect is there once, in order."""
    from sqlalchemy import text

    key = uuid.uuid4().hex
    failures: list[int] = []
    with app.app_context():
        _effects_table()

    def on_updated(envelope):
        data = envelope["data"]
        if data.get("key") != key:
            return
        if data["n"] == 4 and len(failures) < 2:
            failures.append(4)
            raise RuntimeError("a passing failure")
        db.session.execute(text("INSERT INTO kit_test_effects (key, n) VALUES (:k, :n)"), {"k": key, "n": data["n"]})

    for n in range(10):
        envelope = make_envelope("room.updated", {"key": key, "n": n}, "kit-test")
        topics.produce("room-events", key, json.dumps(envelope).encode())
    consumer = EventConsumer(
        app,
        f"kit-{uuid.uuid4().hex[:6]}",
        {"room-events": {"room.updated": on_updated}},
        owners={"room-events": "kit-test"},
        batch_size=50,
    )
    consumer.start()
    try:
        wait_until(lambda: len(_effects(app, key)) >= 10, message="every event to be applied")
        time.sleep(0.5)  # a second application would show now
    finally:
        consumer.stop()
    assert _effects(app, key) == list(range(10)) and failures == [4, 4]


def test_events_recorded_by_a_failed_handler_are_not_written_and_its_retry_records_them_once(app, topics):
    """A handler that records an event and then fails: its attempt at once and its first attempt in a savepoint
    roll back, and with them the event; the retry that succeeds writes it, once."""
    key = uuid.uuid4().hex
    attempts: list[int] = []

    def on_updated(envelope):
        if envelope["data"].get("key") != key:
            return
        record_event("room-events", f"echo-{key}", "room.updated", {"echo": True}, "kit-test")
        attempts.append(1)
        if len(attempts) <= 2:
            raise RuntimeError("a passing failure, after recording an event")

    topics.produce("room-events", key, json.dumps(make_envelope("room.updated", {"key": key}, "kit-test")).encode())
    consumer = EventConsumer(
        app, f"kit-{uuid.uuid4().hex[:6]}", {"room-events": {"room.updated": on_updated}}, owners={"room-events": "kit-test"}
    )
    consumer.start()

    def echoes():
        with app.app_context():
            return db.session.execute(select(func.count()).where(OutboxEvent.key == f"echo-{key}")).scalar_one()

    try:
        wait_until(lambda: len(attempts) >= 3 and echoes() >= 1, message="the third attempt to succeed")
        time.sleep(0.5)
    finally:
        consumer.stop()
    assert len(attempts) == 3 and echoes() == 1


def test_a_clean_batch_is_applied_at_once_without_savepoints(app, topics):
    """The common case costs one INSERT of the batch's event ids plus the handlers' own statements: no
    SAVEPOINT per message (the careful path is for batches that fail)."""
    from sqlalchemy import event, text

    key = uuid.uuid4().hex
    statements: list[str] = []
    with app.app_context():
        _effects_table()
        engine = db.engine

    def on_updated(envelope):
        if envelope["data"].get("key") == key:
            db.session.execute(
                text("INSERT INTO kit_test_effects (key, n) VALUES (:k, :n)"), {"k": key, "n": envelope["data"]["n"]}
            )

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    for n in range(20):
        topics.produce("room-events", key, json.dumps(make_envelope("room.updated", {"key": key, "n": n}, "kit-test")).encode())
    consumer = EventConsumer(
        app, f"kit-{uuid.uuid4().hex[:6]}", {"room-events": {"room.updated": on_updated}}, owners={"room-events": "kit-test"}
    )
    event.listen(engine, "before_cursor_execute", seen)
    consumer.start()
    try:
        wait_until(lambda: len(_effects(app, key)) >= 20, message="every event to be applied")
    finally:
        consumer.stop()
        event.remove(engine, "before_cursor_execute", seen)
    assert _effects(app, key) == list(range(20))
    assert not [s for s in statements if s.lstrip().upper().startswith("SAVEPOINT")]


def test_a_handler_cancelled_by_the_statement_timeout_is_parked_and_its_partition_moves_on(app, topics):
    """A statement of one message cancelled on a live server (statement_timeout) is that message's failure:
    retried, then parked; it is not taken for a database outage that blocks the partition for ever."""
    from sqlalchemy import text

    key, group = uuid.uuid4().hex, f"kit-{uuid.uuid4().hex[:6]}"
    applied: list[int] = []

    def on_updated(envelope):
        data = envelope["data"]
        if data.get("key") != key:
            return
        if data["n"] == 0:
            db.session.execute(text("SET LOCAL statement_timeout = '50ms'"))
            db.session.execute(text("SELECT pg_sleep(1)"))
        applied.append(data["n"])

    for n in range(2):
        topics.produce("room-events", key, json.dumps(make_envelope("room.updated", {"key": key, "n": n}, "kit-test")).encode())
    consumer = EventConsumer(
        app, group, {"room-events": {"room.updated": on_updated}}, owners={"room-events": "kit-test"}, max_attempts=2
    )
    consumer.start()
    try:
        wait_until(lambda: applied == [1], timeout=30, message="the message after the cancelled one to be applied")
    finally:
        consumer.stop()
    with app.app_context():
        parked = db.session.execute(select(ParkedEvent).where(ParkedEvent.consumer_group == group)).scalars().all()
    assert len(parked) == 1 and ("QueryCanceled" in parked[0].error or "statement timeout" in parked[0].error)


@pytest.fixture
def private_broker(tmp_path):
    from devstack.components import Broker
    from devstack.processes import free_port

    broker = Broker(free_port(), tmp_path)
    broker.start()
    yield broker
    broker.stop()


def test_a_broker_that_stops_answering_for_longer_than_a_lease_gets_each_event_once(fresh_database, private_broker):
    import psutil
    from conftest import KitTestConfig

    from servicekit.app import create_service_app
    from servicekit.openapi import build_spec
    from servicekit.testing import TopicReader

    config = KitTestConfig.from_env(
        {
            "DATABASE_URL": fresh_database("kit_frozen_broker"),
            "KAFKA_BOOTSTRAP_SERVERS": private_broker.bootstrap,
            "LOG_LEVEL": "WARNING",
        }
    )
    app = create_service_app(__name__, config, openapi=build_spec("kit-frozen", "kit frozen broker", []))
    with app.app_context():
        db.create_all()
    key = uuid.uuid4().hex
    reader = TopicReader(private_broker.bootstrap)
    relay = OutboxRelay(app, lease_seconds=1.5)
    relay.start()
    broker = psutil.Process(private_broker.child.popen.pid)
    try:
        with app.app_context():
            record_event("room-events", key, "room.updated", {"n": 0}, "kit-test")
            db.session.commit()
        assert len(reader.collect("room-events", lambda k, v: k == key, expect=1)) == 1  # connected, and delivering
        broker.suspend()  # up, its socket open, answering nothing (a partition, a stalled broker)
        try:
            with app.app_context():
                record_event("room-events", key, "room.updated", {"n": 1}, "kit-test")
                db.session.commit()
            # The producer's request times out (socket.timeout.ms, 5 s) and is retried; the lease (1.5 s) would
            # have run out six times over, so without its renewal, kept up while the relay's rounds find nothing
            # new, the row would be claimed and produced again.
            time.sleep(10)
        finally:
            broker.resume()
        events = reader.collect("room-events", lambda k, v: k == key, expect=2, timeout=60, settle=6)
    finally:
        relay.stop()
    assert [e["data"]["n"] for e in events] == [0, 1]
    with app.app_context():
        assert db.session.execute(select(func.count()).where(OutboxEvent.published_at.is_(None))).scalar_one() == 0
