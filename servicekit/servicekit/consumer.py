"""The consumer runner: a consumer group whose handlers apply each event exactly once.

The event id is recorded in `processed_events` in the same transaction as the
handler's effect, so a redelivered event changes nothing. Messages are applied in
batches: one transaction and one offset commit per batch. A batch is first applied at once (one
INSERT of its event ids, then the handlers, no savepoints); only when that fails (a handler raised,
or a message must be parked) is it rolled back and applied message by message, each in a savepoint.
So a handler may run twice for one message (its batch was rolled back in between); its effects in
the database apply once. A failing handler is
retried with backoff (the message is re-read by seeking back, so the partition
keeps its order); after `max_attempts` the message is parked in `parked_events`,
logged and counted, and the partition moves on. A database outage is retried
for as long as it lasts: nothing is parked because the database is away.

Each topic has one owner: `owners` maps a topic to the only `producer` whose envelopes
are believed on it; an envelope from anyone else (a forged `user.updated`, say) is parked
unapplied. Every consumed topic must have an owner.

The records are kept for PROCESSED_EVENTS_RETENTION_HOURS (`forget_processed_events`, a periodic job of
every service's worker): longer than the broker keeps the topics, so no event it can still deliver is
forgotten.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from flask import Flask
from psycopg.errors import DeadlockDetected, QueryCanceled
from sqlalchemy import String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import InterfaceError, OperationalError

from .db import (
    ParkedEvent,
    ProcessedEvent,
    db,
    delete_in_batches,
    discard_pending_events,
    utcnow,
    write_pending_events,
)
from .events import is_valid_envelope
from .kafka import consumer_config
from .metrics import metrics_of
from .worker import BackgroundThread

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
PARKED = ("parked",)  # the outcome of a message kept in parked_events


def _database_away(exc: Exception) -> bool:
    """The database cannot be reached (retry the batch later), as opposed to a statement of this message's
    that failed on a live server (cancelled by statement_timeout, a deadlock): that one is the handler's
    failure, retried and then parked like any other, so it cannot block its partition for ever."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    return exc.connection_invalidated or not isinstance(exc.orig, QueryCanceled | DeadlockDetected)


# The event ids of a batch, recorded in one statement built once (the ids are one array): a multi-row VALUES
# list is compiled again for every batch, which was a quarter of a consumer's CPU.
_PROCESSED = ProcessedEvent.__table__
_RECORD_NEW_EVENTS = (
    insert(_PROCESSED)
    .from_select(
        ["consumer_group", "event_id"],
        select(bindparam("group", type_=String), func.unnest(bindparam("ids", type_=ARRAY(String)))),
    )
    .on_conflict_do_nothing()
    .returning(_PROCESSED.c.event_id)
)


def forget_processed_events(retention: timedelta) -> int:
    """Delete the records of events processed more than `retention` ago; returns how many went.

    A record must outlive every chance of its event being delivered again. A consumer group whose committed
    offsets are gone (reset by an operator, or expired while the group was down: Kafka's
    `offsets.retention.minutes`, 7 days by default) reads its topics again from the earliest message kept
    (`auto.offset.reset=earliest`), and those are as old as the topics' retention (`retention.ms`, 7 days by
    default). So `retention` must exceed that."""
    return delete_in_batches(ProcessedEvent, ProcessedEvent.processed_at < utcnow() - retention)


class EventConsumer(BackgroundThread):
    """Consumes `handlers`' topics as `group_id`; `handlers[topic][event_type](envelope)`; only envelopes
    whose `producer` is `owners[topic]` are applied (others are parked and counted as rejected).

    Messages are taken in batches of up to `batch_size`: each is applied in a savepoint of one
    database transaction, which commits once, and then their offsets are committed once. A message
    that must be retried ends its batch: what came before it is committed, and every partition of
    the batch is rewound to its first message not handled."""

    def __init__(
        self,
        app: Flask,
        group_id: str,
        handlers: dict[str, dict[str, Handler]],
        *,
        owners: dict[str, str],
        max_attempts: int = 5,
        batch_size: int = 100,
    ):
        unowned = sorted(set(handlers) - set(owners))
        if unowned:
            raise ValueError(f"no owning producer given for topic(s) {', '.join(unowned)}")
        super().__init__()
        self.name = f"consumer-{group_id}"
        self.app = app
        self.group_id = group_id
        self.handlers = handlers
        self.owners = owners
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        config = app.config["SERVICE"]
        self.consumer = Consumer(
            consumer_config(config.kafka_bootstrap_servers, group_id, f"{config.service_name}-consumer", config.kafka_security())
        )
        self._attempts: dict[tuple[str, int, int], int] = {}
        self.assigned = threading.Event()

    def start(self) -> None:
        self.consumer.subscribe(list(self.handlers), on_assign=lambda _c, _p: self.assigned.set())
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self.consumer.consume(num_messages=self.batch_size, timeout=0.5)
            if messages:
                self.handle_batch(messages)

    def handle_batch(self, messages: list[Message]) -> None:
        """Apply `messages` in one transaction, then commit the offsets of those applied, skipped or parked."""
        handled: list[tuple[Message, tuple[str, ...]]] = []  # (message, its metric labels or PARKED)
        retry_from, delay = None, 0.0
        with self.app.app_context():
            try:
                at_once = self._apply_at_once(messages)
                if at_once is not None:
                    handled = at_once
                else:
                    for index, message in enumerate(messages):
                        if message.error():
                            self._log_broker_error(message)
                            continue
                        outcome = self._handle_in_transaction(message)
                        if isinstance(outcome, float):
                            retry_from, delay = index, outcome
                            break
                        handled.append((message, outcome))
                db.session.commit()
            except (OperationalError, InterfaceError) as exc:
                db.session.rollback()
                log.warning("consumer %s: database unavailable, retrying the batch: %s", self.group_id, exc.__class__.__name__)
                self._rewind(messages)
                self._stop.wait(2.0)
                return
        if retry_from is not None:
            self._rewind(messages[retry_from:])
        if handled:
            self._commit([message for message, _ in handled])
            metrics = metrics_of(self.app)
            for message, labels in handled:
                self._attempts.pop((message.topic(), message.partition(), message.offset()), None)
                if labels == PARKED:
                    metrics.events_parked.labels(message.topic()).inc()
                else:
                    metrics.events_consumed.labels(*labels).inc()
            self._record_lag(handled[-1][0])
        if retry_from is not None:
            self._stop.wait(delay)

    def _apply_at_once(self, messages: list[Message]) -> list[tuple[Message, tuple[str, ...]]] | None:
        """The common case, in two round trips plus the handlers' own: record every event id of the batch in
        one INSERT, then run the handlers of those not seen before, without savepoints. None (with the session
        rolled back) when the batch needs the careful path: a message to park, or a handler that failed."""
        plan: list[tuple[Message, dict[str, Any], Handler | None]] = []
        for message in messages:
            if message.error():
                self._log_broker_error(message)
                continue
            envelope = self._decode(message)
            if envelope is None or envelope["producer"] != self.owners.get(message.topic()):
                return None
            plan.append((message, envelope, self.handlers.get(message.topic(), {}).get(envelope["event_type"])))
        handled: list[tuple[Message, tuple[str, ...]]] = []
        try:
            event_ids = list(dict.fromkeys(str(envelope["event_id"]) for _m, envelope, handler in plan if handler))
            new: set[str] = set()
            if event_ids:
                rows = db.session.connection().execute(_RECORD_NEW_EVENTS, {"group": self.group_id, "ids": event_ids})
                new = set(rows.scalars())
            for message, envelope, handler in plan:
                event_id = str(envelope["event_id"])
                if handler is None:
                    outcome = "ignored"
                elif event_id in new:
                    new.discard(event_id)  # the same event twice in one batch: the second is a duplicate
                    handler(envelope)
                    outcome = "applied"
                else:
                    outcome = "duplicate"
                handled.append((message, (message.topic(), str(envelope["event_type"]), outcome)))
        except Exception as exc:
            if _database_away(exc):
                raise
            db.session.rollback()
            log.info("consumer %s: applying the batch at once failed (%s); one by one", self.group_id, exc.__class__.__name__)
            return None
        return handled

    def _log_broker_error(self, message: Message) -> None:
        if message.error().code() != KafkaError._PARTITION_EOF:  # the end of a partition is not news
            log.warning("consumer %s: %s", self.group_id, message.error())

    def _handle_in_transaction(self, message: Message) -> tuple[str, ...] | float:
        """Apply, skip or park one message inside the batch's transaction: its metric labels (or PARKED),
        or the seconds to wait before it is retried."""
        position = (message.topic(), message.partition(), message.offset())
        envelope = self._decode(message)
        if envelope is None:
            self._park(message, "not a valid event envelope")
            return PARKED
        if envelope["producer"] != self.owners.get(message.topic()):
            self._park(message, f"producer {envelope['producer']!r} does not own topic {message.topic()}")
            return (message.topic(), str(envelope["event_type"]), "rejected")
        handler = self.handlers.get(message.topic(), {}).get(envelope["event_type"])
        if handler is None:
            return (message.topic(), envelope["event_type"], "ignored")
        savepoint = db.session.begin_nested()
        try:
            applied = self._apply(handler, envelope)
            write_pending_events(db.session())  # the events this message's handler recorded, inside its savepoint
            savepoint.commit()
        except Exception as exc:
            if _database_away(exc):
                raise  # the whole batch is retried
            savepoint.rollback()
            discard_pending_events(db.session())
            attempts = self._attempts.get(position, 0) + 1
            self._attempts[position] = attempts
            if attempts >= self.max_attempts:
                log.exception("consumer %s: parking %s after %d attempts", self.group_id, position, attempts)
                self._park(message, f"{exc.__class__.__name__}: {exc}")
                return PARKED
            log.warning("consumer %s: handler failed (attempt %d), retrying %s: %s", self.group_id, attempts, position, exc)
            return min(0.2 * 2**attempts, 5.0)
        return (message.topic(), envelope["event_type"], "applied" if applied else "duplicate")

    def _record_lag(self, message: Message) -> None:
        # Cached watermarks come with fetch responses: no extra request to the broker.
        _low, high = self.consumer.get_watermark_offsets(TopicPartition(message.topic(), message.partition()), cached=True)
        if high is not None and high >= 0:
            metrics_of(self.app).consumer_lag.labels(message.topic(), str(message.partition())).set(
                max(0, high - message.offset() - 1)
            )

    def _apply(self, handler: Handler, envelope: dict[str, Any]) -> bool:
        inserted = db.session.execute(
            insert(ProcessedEvent)
            .values(consumer_group=self.group_id, event_id=str(envelope["event_id"]))
            .on_conflict_do_nothing()
            .returning(ProcessedEvent.event_id)
        ).first()
        if inserted is None:
            return False  # already applied: a redelivery changes nothing
        handler(envelope)
        return True

    @staticmethod
    def _decode(message: Message) -> dict[str, Any] | None:
        try:
            value = json.loads(message.value() or b"")
        except (ValueError, UnicodeDecodeError):
            return None
        return value if is_valid_envelope(value) else None

    def _rewind(self, messages: list[Message]) -> None:
        """Seek each partition of `messages` back to its first one, so they are read again in order."""
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            if not message.error():
                first.setdefault((message.topic(), message.partition()), message.offset())
        for (topic, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # the partition was revoked meanwhile: its new owner reads from the commit
                log.warning("consumer %s: cannot rewind %s[%d]: %s", self.group_id, topic, partition, exc)

    def _park(self, message: Message, error: str) -> None:
        """Keep the message in `parked_events` (in the batch's transaction) so the partition moves on."""
        db.session.add(
            ParkedEvent(
                consumer_group=self.group_id,
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                key=(message.key() or b"").decode("utf-8", "replace"),
                value=(message.value() or b"").decode("utf-8", "replace"),
                error=error[:4000],
            )
        )
        log.error(
            "consumer %s: parked %s[%d]@%d: %s", self.group_id, message.topic(), message.partition(), message.offset(), error
        )

    def _commit(self, messages: list[Message]) -> None:
        """Commit, per partition, the offset after the last of `messages`."""
        after: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic(), message.partition())
            after[key] = max(after.get(key, -1), message.offset() + 1)
        try:
            self.consumer.commit(
                offsets=[TopicPartition(topic, partition, offset) for (topic, partition), offset in after.items()],
                asynchronous=False,
            )
        except Exception as exc:  # a lost commit means a redelivery, which is idempotent
            log.warning("consumer %s: offset commit failed: %s", self.group_id, exc)
