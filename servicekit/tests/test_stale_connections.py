"""Pooled connections: pinged before use only after sitting idle, so a dropped one is replaced unnoticed
and a connection in steady use costs no extra round trip."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from servicekit import dbguard
from servicekit.db import db


def _use_a_connection(app) -> None:
    with app.app_context():
        assert db.session.execute(text("SELECT 1")).scalar_one() == 1
        db.session.close()  # back to the pool


def _terminate_every_other_backend(app) -> int:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def pings(app, monkeypatch):
    """The deadlines of the watchdog's waits: a ping has its own; statements, commits and resets have none."""
    watchdog = app.extensions["servicekit.dbguard"]
    seen: list[float] = []
    begin = watchdog.begin

    def recording(connection, deadline=None):
        if deadline is not None:
            seen.append(deadline)
        begin(connection, deadline)

    monkeypatch.setattr(watchdog, "begin", recording)
    return seen


def test_a_connection_dropped_while_idle_is_replaced_before_use(app, pings):
    _use_a_connection(app)
    assert _terminate_every_other_backend(app) >= 1
    time.sleep(dbguard.PING_AFTER_IDLE_SECONDS + 0.3)
    _use_a_connection(app)  # the stale one fails its ping and the pool hands a new one
    assert pings


def test_a_connection_in_steady_use_is_not_pinged(app, pings, monkeypatch):
    _use_a_connection(app)
    monkeypatch.setattr(dbguard, "PING_AFTER_IDLE_SECONDS", 3600.0)
    pings.clear()
    for _ in range(3):
        _use_a_connection(app)
    assert pings == []
    monkeypatch.setattr(dbguard, "PING_AFTER_IDLE_SECONDS", 0.0)
    _use_a_connection(app)
    assert pings  # idle for at least 0 s: pinged


def test_a_connection_kept_idle_after_its_commit_is_not_cut(app):
    """An exclusive job holds its advisory-lock connection idle after committing: the watchdog times the
    COMMIT itself, not the time until check-in, so the connection (and its lock) survives the deadline."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    dbguard.guard_engine(engine, deadline=0.3)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            connection.commit()
            time.sleep(0.9)  # three deadlines, idle
            assert connection.execute(text("SELECT 2")).scalar_one() == 2
            connection.rollback()
            time.sleep(0.9)
            assert connection.execute(text("SELECT 3")).scalar_one() == 3
    finally:
        engine.dispose()
