"""The outbox relay: publishes committed outbox rows to Kafka and marks them sent.

Rows are claimed in batches from a `LeasedQueue` (`FOR UPDATE SKIP LOCKED`, with a
lease), produced with an idempotent producer, and marked published from the delivery
reports. No transaction is open while the broker is talked to. Only the oldest
unpublished row of each (topic, key) is claimable, so several relays may run at
once and per-entity order still holds. A broker outage only delays events: a row whose
message failed (refused, or not acknowledged within `message.timeout.ms`) is released with a
backoff and produced again.

Delivery is at least once. While the broker is away (up to the producer's `message.timeout.ms`, 5 min) the
producer retries each message in its idempotent session and the relay renews the leases of the rows in
flight, so an outage alone publishes nothing twice. A message that times out, or a relay that dies between
the broker's acknowledgement and marking its row, can be published again: consumers deduplicate on
`event_id` (servicekit.consumer does).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import Producer
from flask import Flask
from sqlalchemy import func, select, update

from .db import OutboxEvent, db, delete_in_batches, utcnow
from .kafka import producer_config
from .metrics import metrics_of
from .worker import Job, LeasedQueue, PollingWorker

log = logging.getLogger(__name__)

CLAIM_LEASE_SECONDS = 30
MAX_BACKOFF_SECONDS = 60
RETENTION_DAYS = 7

OUTBOX = LeasedQueue(
    table="outbox_events",
    # Only the oldest unpublished event of each (topic, key) is claimable: per-entity order holds.
    ready=(
        "q.published_at IS NULL AND (q.claimed_until IS NULL OR q.claimed_until < now())"
        " AND NOT EXISTS (SELECT 1 FROM outbox_events e"
        " WHERE e.topic = q.topic AND e.key = q.key AND e.published_at IS NULL AND e.id < q.id)"
    ),
    lease_column="claimed_until",
    returning="id, topic, key, envelope",
)


@dataclass
class _Outcome:
    row_id: int
    topic: str
    error: str | None


class OutboxRelay(PollingWorker):
    """Publishes the outbox in batches: claim up to `batch_size` rows, produce them all, wait for
    the broker's acknowledgements (`flush`), then mark the delivered ones in one UPDATE."""

    name = "outbox-relay"

    def __init__(
        self,
        app: Flask,
        *,
        batch_size: int = 500,
        idle_seconds: float = 0.05,
        flush_seconds: float = 5.0,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ):
        super().__init__(app, idle_seconds=idle_seconds)
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.lease_seconds = lease_seconds
        config = app.config["SERVICE"]
        self.producer = Producer(
            producer_config(config.kafka_bootstrap_servers, f"{config.service_name}-outbox", config.kafka_security())
        )
        self._outcomes: list[_Outcome] = []
        # Rows produced and not yet acknowledged or failed: their leases are renewed while they wait, so a broker
        # that is away for a while (the producer retrying them) never lets another round claim them again.
        self._in_flight: set[int] = set()
        self._leases_renewed = 0.0

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.producer.flush(min(timeout, 5.0))
        with self.app.app_context():
            self._record_outcomes()

    def jobs(self) -> list[Job]:
        return [Job("outbox-housekeeping", 5.0, self.housekeeping)]

    def poll_once(self) -> int:
        return self.publish_pending_events()

    def publish_pending_events(self) -> int:
        """One relay round: settle delivery reports, then claim, produce and flush a batch. Returns rows produced."""
        self.producer.poll(0)
        self._record_outcomes()
        self._renew_leases()
        if len(self._in_flight) >= self.batch_size:
            self.producer.poll(0.05)
            return 0
        fresh = not self._in_flight  # then every row in flight after this claim has a full lease
        rows = OUTBOX.claim(db.session, self.batch_size, self.lease_seconds)
        if rows and fresh:
            self._leases_renewed = time.monotonic()
        for row_id, topic, key, envelope in rows:
            self._produce(row_id, topic, key, envelope)
        if rows:
            self.producer.flush(self.flush_seconds)
            self._record_outcomes()
        return len(rows)

    def _produce(self, row_id: int, topic: str, key: str, envelope: dict) -> None:
        def on_delivery(err, _msg, row_id=row_id, topic=topic):
            self._outcomes.append(_Outcome(row_id, topic, None if err is None else str(err)))

        try:
            self.producer.produce(topic, key=key.encode(), value=json.dumps(envelope).encode(), on_delivery=on_delivery)
            self._in_flight.add(row_id)
        except BufferError as exc:
            self._outcomes.append(_Outcome(row_id, topic, f"local queue full: {exc}"))

    def _record_outcomes(self) -> None:
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        metrics = metrics_of(self.app)
        delivered = [o.row_id for o in outcomes if o.error is None]
        failed = [o for o in outcomes if o.error is not None]
        self._in_flight.difference_update(o.row_id for o in outcomes)
        if delivered:
            db.session.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_(delivered)).values(published_at=func.now(), last_error=None)
            )
        for outcome in failed:
            OUTBOX.retry_later(db.session, outcome.row_id, outcome.error, MAX_BACKOFF_SECONDS)
            metrics.outbox_failures.labels(outcome.topic).inc()
        db.session.commit()
        for outcome in outcomes:
            if outcome.error is None:
                metrics.outbox_published.labels(outcome.topic).inc()
        if failed:
            log.warning("outbox: %d events not delivered, will retry: %s", len(failed), failed[0].error)

    def _renew_leases(self) -> None:
        """Push the leases of the rows in flight forward, a third of a lease after the last time."""
        if not self._in_flight or time.monotonic() - self._leases_renewed < self.lease_seconds / 3:
            return
        OUTBOX.extend(db.session, sorted(self._in_flight), self.lease_seconds)
        db.session.commit()
        self._leases_renewed = time.monotonic()
        log.warning("outbox: %d events still waiting for the broker's acknowledgement", len(self._in_flight))

    def housekeeping(self) -> None:
        """Refresh the pending gauge and delete events published more than RETENTION_DAYS ago."""
        pending = db.session.execute(select(func.count()).where(OutboxEvent.published_at.is_(None))).scalar_one()
        metrics_of(self.app).outbox_pending.set(pending)
        db.session.commit()
        delete_in_batches(OutboxEvent, OutboxEvent.published_at < utcnow() - timedelta(days=RETENTION_DAYS))
