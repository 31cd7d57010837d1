"""A request the gateway has given up on (its `X-Request-Start` stamp older than REQUEST_DEADLINE_SECONDS) is
refused before any work, and a transaction past the deadline is refused at commit: nothing changes."""

from __future__ import annotations

import time

import pytest
from conftest import KitTestConfig
from flask import jsonify, request
from sqlalchemy import select

from servicekit.app import create_service_app
from servicekit.db import RevokedUser, db, utcnow
from servicekit.deadline import GatewayGaveUp, started_at
from servicekit.openapi import build_spec

DEADLINE = 3


def _note(user_id: str) -> None:
    db.session.add(RevokedUser(user_id=user_id, revoked_at=utcnow()))


def _app(fresh_database, infrastructure, name: str, deadline: int):
    config = KitTestConfig.from_env(
        {
            "DATABASE_URL": fresh_database(name),
            "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap,
            "LOG_LEVEL": "WARNING",
            "REQUEST_DEADLINE_SECONDS": str(deadline),
        }
    )
    return create_service_app(__name__, config, openapi=build_spec(name, name, []))


@pytest.fixture(scope="module")
def deadline_app(fresh_database, infrastructure):
    app = _app(fresh_database, infrastructure, "kit_deadline", DEADLINE)

    @app.post("/notes/<name>")
    def write_note(name: str):
        time.sleep(float(request.args.get("work", "0")))  # the handler's own time, before its commit
        _note(name)
        db.session.commit()
        return jsonify(written=name), 201

    @app.post("/claimed-notes/<name>")
    def claim_then_write(name: str):
        """As an Idempotency-Key create does: claim (committed), work (refused at commit), forget the claim."""
        _note(f"{name}-claim")
        db.session.commit()
        time.sleep(float(request.args.get("work", "0")))
        _note(name)
        try:
            db.session.commit()
        except GatewayGaveUp:
            try:
                db.session.commit()  # the refused transaction, once more: still refused
            except GatewayGaveUp:
                pass
            else:
                return jsonify(refused_twice=False), 200
            db.session.rollback()
            db.session.execute(RevokedUser.__table__.delete().where(RevokedUser.user_id == f"{name}-claim"))
            db.session.commit()  # the clean-up: a new transaction, allowed
            raise
        return jsonify(written=name), 201

    @app.delete("/notes/<name>")
    def forget_note(name: str):
        return "", 204

    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(scope="module")
def plain_app(fresh_database, infrastructure):
    app = _app(fresh_database, infrastructure, "kit_no_deadline", 0)

    @app.post("/notes/<name>")
    def write_note(name: str):
        _note(name)
        db.session.commit()
        return jsonify(written=name), 201

    with app.app_context():
        db.create_all()
    return app


def _notes(app) -> set[str]:
    with app.app_context():
        return set(db.session.execute(select(RevokedUser.user_id)).scalars())


def _stamp(age: float, unit: float = 1.0, prefix: str = "t=") -> dict:
    return {"X-Request-Start": f"{prefix}{(time.time() - age) * unit:.3f}"}


@pytest.mark.parametrize(
    ("unit", "prefix"),
    [(1.0, "t="), (1.0, ""), (1e3, "t="), (1e6, "")],
    ids=["nginx-seconds", "bare-seconds", "milliseconds", "microseconds"],
)
def test_a_request_older_than_the_deadline_is_refused_before_any_work(deadline_app, unit, prefix):
    name = f"late-{unit:g}-{prefix or 'bare'}"
    answer = deadline_app.test_client().post(f"/notes/{name}", headers=_stamp(DEADLINE + 1, unit, prefix))
    assert answer.status_code == 503
    assert answer.content_type == "application/problem+json"
    assert answer.headers["Retry-After"] == "5"
    assert "not carried out" in answer.get_json()["detail"]
    assert name not in _notes(deadline_app)


def test_a_fresh_request_and_one_without_a_stamp_are_served(deadline_app):
    client = deadline_app.test_client()
    assert client.post("/notes/fresh", headers=_stamp(0.1)).status_code == 201
    assert client.post("/notes/unstamped").status_code == 201
    assert client.post("/notes/garbled", headers={"X-Request-Start": "t=yesterday"}).status_code == 201
    assert {"fresh", "unstamped", "garbled"} <= _notes(deadline_app)


def test_a_transaction_that_would_commit_after_the_deadline_is_refused_and_rolled_back(deadline_app):
    # Begun 1 s before the deadline, the handler works 1.5 s: its commit comes after it.
    answer = deadline_app.test_client().post("/notes/slow?work=1.5", headers=_stamp(DEADLINE - 1.0))
    assert answer.status_code == 503
    assert "slow" not in _notes(deadline_app)


def test_a_refused_transaction_stays_refused_and_the_clean_up_after_its_rollback_commits(deadline_app):
    answer = deadline_app.test_client().post("/claimed-notes/keyed?work=1.5", headers=_stamp(DEADLINE - 1.0))
    assert answer.status_code == 503, answer.get_json()
    notes = _notes(deadline_app)
    assert "keyed" not in notes  # the work, refused even when committed a second time
    assert "keyed-claim" not in notes  # the claim, committed, then forgotten by the clean-up


def test_a_claim_committed_in_time_stays_when_the_work_is_in_time_too(deadline_app):
    answer = deadline_app.test_client().post("/claimed-notes/timely", headers=_stamp(0.1))
    assert answer.status_code == 201
    assert {"timely", "timely-claim"} <= _notes(deadline_app)


def test_with_the_deadline_off_an_old_stamp_changes_nothing(plain_app):
    answer = plain_app.test_client().post("/notes/ancient", headers=_stamp(3600))
    assert answer.status_code == 201
    assert "ancient" in _notes(plain_app)


def test_a_204_answer_names_no_content_type(deadline_app):
    answer = deadline_app.test_client().delete("/notes/any")
    assert answer.status_code == 204
    assert "Content-Type" not in answer.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("t=1767225600.123", 1767225600.123),
        ("1767225600", 1767225600.0),
        ("t=1767225600123", 1767225600.123),
        ("1767225600123456", 1767225600.123456),
        ("", None),
        ("t=", None),
        ("t=-5", None),
        ("t=nan", None),
        ("t=inf", None),
        ("soon", None),
    ],
)
def test_stamps_are_read_in_seconds_milliseconds_or_microseconds(value, expected):
    assert started_at(value) == (pytest.approx(expected) if expected is not None else None)
