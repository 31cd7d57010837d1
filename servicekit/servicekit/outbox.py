"""The outbox relay: publishes committed outbox rows to Kafka and marks them sent.

Rows are claimed in a short transaction (`FOR UPDATE SKIP LOCKED`, with a lease),
produced with an idempotent producer, and marked published from the delivery
reports. No transaction is open while the broker is talked to. Only the oldest
unpublished row of each (topic, key) is claimable, so several relays may run at
once and per-entity order still holds. A broker outage only delays events: an
unacknowledged row's claim is released with a backoff and it is produced again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Producer
from flask import Flask
from sqlalchemy import delete, func, select, text, update

from .db import OutboxEvent, db
from .kafka import producer_config
from .metrics import metrics_of

log = logging.getLogger(__name__)

CLAIM_LEASE_SECONDS = 30
MAX_BACKOFF_SECONDS = 60
RETENTION_DAYS = 7

_CLAIM = text(
    """
    UPDATE outbox_events SET claimed_until = now() + make_interval(secs => :lease), attempts = attempts + 1
    WHERE id IN (
        SELECT o.id FROM outbox_events o
        WHERE o.published_at IS NULL
          AND (o.claimed_until IS NULL OR o.claimed_until < now())
          AND NOT EXISTS (
              SELECT 1 FROM outbox_events e
              WHERE e.topic = o.topic AND e.key = o.key AND e.published_at IS NULL AND e.id < o.id)
        ORDER BY o.id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING id, topic, key, envelope
    """
)


@dataclass
class _Outcome:
    row_id: int
    topic: str
    error: str | None


class OutboxRelay:
    """Runs `publish_pending_events` in a loop on a daemon thread."""

    def __init__(self, app: Flask, *, batch_size: int = 500, idle_seconds: float = 0.1):
        self.app = app
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        config = app.config["SERVICE"]
        self.producer = Producer(
            producer_config(config.kafka_bootstrap_servers, f"{config.service_name}-outbox", config.kafka_security())
        )
        self._outcomes: list[_Outcome] = []
        self._in_flight = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_housekeeping = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self.producer.flush(min(timeout, 5.0))
        with self.app.app_context():
            self._record_outcomes()

    def _run(self) -> None:
        while not self._stop.is_set():
            produced = 0
            with self.app.app_context():
                try:
                    produced = self.publish_pending_events()
                    self._housekeeping()
                except Exception:
                    # Typically the database is away; the rows stay and are retried.
                    log.exception("outbox relay iteration failed")
                    db.session.rollback()
                    self._stop.wait(1.0)
            if not produced:
                self._stop.wait(self.idle_seconds)

    def publish_pending_events(self) -> int:
        """One relay round: settle delivery reports, then claim and produce a batch. Returns rows produced."""
        self.producer.poll(0)
        self._record_outcomes()
        if self._in_flight >= self.batch_size:
            self.producer.poll(0.05)
            return 0
        rows = db.session.execute(_CLAIM, {"lease": CLAIM_LEASE_SECONDS, "limit": self.batch_size}).all()
        db.session.commit()
        for row_id, topic, key, envelope in rows:
            self._produce(row_id, topic, key, envelope)
        if rows:
            self.producer.poll(0.02)
            self._record_outcomes()
        return len(rows)

    def _produce(self, row_id: int, topic: str, key: str, envelope: dict) -> None:
        def on_delivery(err, _msg, row_id=row_id, topic=topic):
            self._outcomes.append(_Outcome(row_id, topic, None if err is None else str(err)))

        try:
            self.producer.produce(topic, key=key.encode(), value=json.dumps(envelope).encode(), on_delivery=on_delivery)
            self._in_flight += 1
        except BufferError as exc:
            self._outcomes.append(_Outcome(row_id, topic, f"local queue full: {exc}"))

    def _record_outcomes(self) -> None:
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        metrics = metrics_of(self.app)
        delivered = [o.row_id for o in outcomes if o.error is None]
        failed = [o for o in outcomes if o.error is not None]
        self._in_flight -= len([o for o in outcomes if not (o.error or "").startswith("local queue full")])
        if delivered:
            db.session.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_(delivered)).values(published_at=func.now(), last_error=None)
            )
        for outcome in failed:
            # Release the claim after a backoff that grows with the attempts.
            db.session.execute(
                text(
                    "UPDATE outbox_events SET last_error = :err, claimed_until = now() + "
                    "make_interval(secs => least(:cap, power(2, attempts))) WHERE id = :id"
                ),
                {"err": outcome.error[:1000], "cap": MAX_BACKOFF_SECONDS, "id": outcome.row_id},
            )
            metrics.outbox_failures.labels(outcome.topic).inc()
        db.session.commit()
        for outcome in outcomes:
            if outcome.error is None:
                metrics.outbox_published.labels(outcome.topic).inc()
        if failed:
            log.warning("outbox: %d events not delivered, will retry: %s", len(failed), failed[0].error)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_housekeeping < 5.0:
            return
        self._last_housekeeping = now
        pending = db.session.execute(select(func.count()).where(OutboxEvent.published_at.is_(None))).scalar_one()
        metrics_of(self.app).outbox_pending.set(pending)
        db.session.execute(
            delete(OutboxEvent).where(OutboxEvent.published_at < func.now() - text(f"interval '{RETENTION_DAYS} days'"))
        )
        db.session.commit()
