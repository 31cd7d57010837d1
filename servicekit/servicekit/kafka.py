"""confluent-kafka settings shared by producers, consumers and the admin client."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


def producer_config(bootstrap: str, client_id: str, security: dict | None = None) -> dict:
    return {
        **(security or {}),
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        # Idempotent producer: its retries never duplicate or reorder within a partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # A broker away for less than this delays messages without duplicating them: the producer keeps
        # retrying each one, and the outbox relay renews the leases of the rows in flight meanwhile.
        "message.timeout.ms": 300000,
        "socket.timeout.ms": 5000,
        "reconnect.backoff.max.ms": 2000,
        "log_level": 3,
    }


def consumer_config(bootstrap: str, group_id: str, client_id: str, security: dict | None = None) -> dict:
    return {
        **(security or {}),
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Short group timeouts: a rebalance completes in seconds, and Kafka-compatible
        # brokers that hold JoinGroup for the full rebalance timeout stay usable.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 20000,
        "reconnect.backoff.max.ms": 2000,
        "log_level": 3,
    }


def ensure_topics(
    bootstrap: str,
    topics: tuple[str, ...],
    partitions: int = 3,
    timeout: float = 10.0,
    security: dict | None = None,
) -> None:
    """Create the topics that are missing (idempotent)."""
    admin = AdminClient({**(security or {}), "bootstrap.servers": bootstrap, "log_level": 3})
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        log.info("created topic %s", topic)


def broker_reachable(bootstrap: str, timeout: float = 1.5, security: dict | None = None) -> bool:
    try:
        AdminClient({**(security or {}), "bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False
