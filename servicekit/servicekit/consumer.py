"""The consumer runner: a consumer group whose handlers apply each event exactly once.

The event id is recorded in `processed_events` in the same transaction as the
handler's effect, so a redelivered event changes nothing. A failing handler is
retried with backoff (the message is re-read by seeking back, so the partition
keeps its order); after `max_attempts` the message is parked in `parked_events`,
logged and counted, and the partition moves on. A database outage is retried
for as long as it lasts: nothing is parked because the database is away.

Each topic has one owner: `owners` maps a topic to the only `producer` whose envelopes
are believed on it; an envelope from anyone else (a forged `user.updated`, say) is parked
unapplied. Every consumed topic must have an owner.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from flask import Flask
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import InterfaceError, OperationalError

from .db import ParkedEvent, ProcessedEvent, db
from .events import is_valid_envelope
from .kafka import consumer_config
from .metrics import metrics_of

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]


class EventConsumer:
    """Consumes `handlers`' topics as `group_id`; `handlers[topic][event_type](envelope)`; only envelopes
    whose `producer` is `owners[topic]` are applied."""

    def __init__(
        self,
        app: Flask,
        group_id: str,
        handlers: dict[str, dict[str, Handler]],
        *,
        owners: dict[str, str],
        max_attempts: int = 5,
    ):
        unowned = sorted(set(handlers) - set(owners))
        if unowned:
            raise ValueError(f"no owning producer given for topic(s) {', '.join(unowned)}")
        self.app = app
        self.group_id = group_id
        self.handlers = handlers
        self.owners = owners
        self.max_attempts = max_attempts
        config = app.config["SERVICE"]
        self.consumer = Consumer(
            consumer_config(config.kafka_bootstrap_servers, group_id, f"{config.service_name}-consumer", config.kafka_security())
        )
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.assigned = threading.Event()

    def start(self) -> None:
        self.consumer.subscribe(list(self.handlers), on_assign=lambda _c, _p: self.assigned.set())
        self._thread = threading.Thread(target=self._run, name=f"consumer-{self.group_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer %s: %s", self.group_id, message.error())
                continue
            self.handle_message(message)

    def handle_message(self, message: Message) -> None:
        """Apply one message; commit its offset once it is applied, skipped or parked."""
        position = (message.topic(), message.partition(), message.offset())
        metrics = metrics_of(self.app)
        envelope = self._decode(message)
        if envelope is None:
            self._park(message, "not a valid event envelope")
            return
        if envelope["producer"] != self.owners.get(message.topic()):
            metrics.events_consumed.labels(message.topic(), str(envelope["event_type"]), "rejected").inc()
            self._park(message, f"producer {envelope['producer']!r} does not own topic {message.topic()}")
            return
        handler = self.handlers.get(message.topic(), {}).get(envelope["event_type"])
        if handler is None:
            metrics.events_consumed.labels(message.topic(), envelope["event_type"], "ignored").inc()
            self._commit(message)
            return
        try:
            with self.app.app_context():
                try:
                    applied = self._apply(handler, envelope)
                except Exception:
                    db.session.rollback()
                    raise
        except (OperationalError, InterfaceError) as exc:
            log.warning("consumer %s: database unavailable, retrying %s: %s", self.group_id, position, exc.__class__.__name__)
            self._retry_later(message, delay=2.0)
            return
        except Exception as exc:
            attempts = self._attempts.get(position, 0) + 1
            self._attempts[position] = attempts
            if attempts >= self.max_attempts:
                log.exception("consumer %s: parking %s after %d attempts", self.group_id, position, attempts)
                self._park(message, f"{exc.__class__.__name__}: {exc}")
                return
            log.warning("consumer %s: handler failed (attempt %d), retrying %s: %s", self.group_id, attempts, position, exc)
            self._retry_later(message, delay=min(0.2 * 2**attempts, 5.0))
            return
        self._attempts.pop(position, None)
        metrics.events_consumed.labels(message.topic(), envelope["event_type"], "applied" if applied else "duplicate").inc()
        self._commit(message)
        self._record_lag(message)

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
            db.session.rollback()
            return False
        handler(envelope)
        db.session.commit()
        return True

    @staticmethod
    def _decode(message: Message) -> dict[str, Any] | None:
        try:
            value = json.loads(message.value() or b"")
        except (ValueError, UnicodeDecodeError):
            return None
        return value if is_valid_envelope(value) else None

    def _retry_later(self, message: Message, delay: float) -> None:
        self.consumer.seek(TopicPartition(message.topic(), message.partition(), message.offset()))
        self._stop.wait(delay)

    def _park(self, message: Message, error: str) -> None:
        try:
            with self.app.app_context():
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
                db.session.commit()
        except (OperationalError, InterfaceError):
            self._retry_later(message, delay=2.0)
            return
        self._attempts.pop((message.topic(), message.partition(), message.offset()), None)
        metrics_of(self.app).events_parked.labels(message.topic()).inc()
        log.error(
            "consumer %s: parked %s[%d]@%d: %s", self.group_id, message.topic(), message.partition(), message.offset(), error
        )
        self._commit(message)

    def _commit(self, message: Message) -> None:
        try:
            self.consumer.commit(message=message, asynchronous=False)
        except Exception as exc:  # a lost commit means a redelivery, which is idempotent
            log.warning("consumer %s: offset commit failed: %s", self.group_id, exc)
