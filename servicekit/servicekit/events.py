"""The event envelope and `record_event`, which writes it to the outbox in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from .db import db, pending_events, utcnow

ENVELOPE_VERSION = 1


def make_envelope(event_type: str, data: dict[str, Any], producer: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": utcnow().isoformat(),
        "producer": producer,
        "version": ENVELOPE_VERSION,
        "data": data,
    }


def record_event(topic: str, key: Any, event_type: str, data: dict[str, Any], producer: str) -> dict[str, Any]:
    """Add the event to the current session's transaction; it is published if and only if that commits.

    The session keeps its transaction's events and writes them to the outbox in one INSERT just before it
    commits (`servicekit.db.write_pending_events`), after every other change of the transaction, so
    concurrent changes of one entity (which serialise on the entity's row lock) get outbox ids in commit
    order. A rollback discards them with the rest.
    """
    envelope = make_envelope(event_type, data, producer)
    session = db.session()
    if not session.in_transaction():
        session.begin()  # so that a rollback before any statement still ends a transaction, discarding the event
    pending_events(session).append(
        {"event_id": envelope["event_id"], "topic": topic, "key": str(key), "event_type": event_type, "envelope": envelope}
    )
    return envelope


def is_valid_envelope(value: Any) -> bool:
    required = {"event_id", "event_type", "occurred_at", "producer", "version", "data"}
    return isinstance(value, dict) and required <= value.keys() and isinstance(value["data"], dict)
