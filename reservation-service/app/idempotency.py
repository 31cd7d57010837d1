"""`Idempotency-Key` on POST: the same key and body replay the first answer; another body is 422;
a request arriving while the first is still in flight is 409. Keys are per user."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert

from servicekit.db import db, delete_in_batches, utcnow
from servicekit.problems import Conflict, Problem, ValidationFailed

from .models import IdempotencyKey

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# A key still "in flight" after this long belongs to a request that died; it may be taken over.
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass
class Replay:
    status: int
    body: dict


@dataclass
class Answer:
    """What a create answers: its status and body, and whether it is the replay of an earlier answer."""

    status: int
    body: dict
    replayed: bool = False


def answer_once(
    user_id: int, raw_key: str, request_body: dict, ttl: timedelta, create: Callable[[Callable[[dict], None]], dict]
) -> Answer:
    """Run `create` at most once per user, key and body; a retry gets the first answer.

    `create(record_answer)` must call `record_answer(body)` inside its own transaction, so the answer commits
    with what it created. A client error (4xx) is the answer to the key too; a server-side failure forgets
    the key, so a retry runs again.
    """
    key = validate_key(raw_key)
    replay = begin(user_id, key, request_hash(request_body), ttl)
    if replay is not None:
        return Answer(replay.status, replay.body, replayed=True)
    try:
        body = create(lambda answer: record(user_id, key, 201, answer))
    except Problem as problem:
        if problem.status < 500:
            record_alone(user_id, key, problem.status, problem.to_dict())
        else:
            release(user_id, key)
        raise
    except Exception:
        release(user_id, key)
        raise
    return Answer(201, body)


def validate_key(raw: str) -> str:
    if not _KEY.match(raw):
        raise ValidationFailed.single("Idempotency-Key", "Must be 1 to 255 visible ASCII characters.")
    return raw


def request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def begin(user_id: int, key: str, digest: str, ttl: timedelta) -> Replay | None:
    """Claim the key for this request (committed at once), or return the answer to replay."""
    now = utcnow()
    claimed = db.session.execute(
        insert(IdempotencyKey)
        .values(user_id=user_id, key=key, request_hash=digest, state="in_flight", expires_at=now + ttl)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).first()
    if claimed:
        db.session.commit()
        return None
    row = db.session.get(IdempotencyKey, (user_id, key), with_for_update=True)
    if row.expires_at <= now or (row.state == "in_flight" and row.created_at <= now - ABANDONED_AFTER):
        row.request_hash, row.state, row.response_status, row.response_body = digest, "in_flight", None, None
        row.created_at, row.expires_at = now, now + ttl
        db.session.commit()
        return None
    db.session.commit()
    if row.request_hash != digest:
        raise ValidationFailed.single("Idempotency-Key", "This key was already used with a different request body.")
    if row.state == "in_flight":
        raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly.")
    return Replay(row.response_status, row.response_body)


def record(user_id: int, key: str, status: int, body: dict) -> None:
    """Store the answer (in the caller's transaction, so it commits with the booking)."""
    db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(state="done", response_status=status, response_body=body)
    )


def record_alone(user_id: int, key: str, status: int, body: dict) -> None:
    db.session.rollback()
    record(user_id, key, status, body)
    db.session.commit()


def release(user_id: int, key: str) -> None:
    """Forget the key, so a retry runs again (after a failure that was not the client's)."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
    db.session.commit()


def purge_expired() -> int:
    """Delete the keys past their expiry (run periodically by the worker process's scheduler)."""
    return delete_in_batches(IdempotencyKey, IdempotencyKey.expires_at <= utcnow())
