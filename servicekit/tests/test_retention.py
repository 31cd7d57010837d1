"""Retention: tables that grow with traffic are trimmed by the worker, in short batches, and never of a row
still needed (an event the broker can still deliver is remembered)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select

from servicekit.config import BaseConfig, ConfigError
from servicekit.db import OutboxEvent, ProcessedEvent, db, delete_in_batches, utcnow
from servicekit.worker import Scheduler


def _record(group: str, event_id: str, age: timedelta) -> None:
    db.session.execute(insert(ProcessedEvent).values(consumer_group=group, event_id=event_id, processed_at=utcnow() - age))


def _remembered() -> set[tuple[str, str]]:
    return {tuple(row) for row in db.session.execute(select(ProcessedEvent.consumer_group, ProcessedEvent.event_id))}


def test_delete_in_batches_deletes_only_the_matching_rows_one_short_transaction_per_batch(app):
    with app.app_context():
        for n in range(5):
            _record("g", f"old-{n}", timedelta(days=30))
        for n in range(3):
            _record("g", f"new-{n}", timedelta(minutes=1))
        db.session.commit()
        deletes = []

        def count(conn, cursor, statement, parameters, context, executemany):
            if statement.startswith("DELETE"):
                deletes.append(cursor.rowcount)

        event.listen(db.engine, "after_cursor_execute", count)
        try:
            went = delete_in_batches(ProcessedEvent, ProcessedEvent.processed_at < utcnow() - timedelta(days=1), batch_size=2)
        finally:
            event.remove(db.engine, "after_cursor_execute", count)
        assert went == 5
        assert deletes == [2, 2, 1]
        assert _remembered() == {("g", f"new-{n}") for n in range(3)}


def test_delete_in_batches_stops_after_max_batches_and_the_next_run_goes_on(app):
    with app.app_context():
        for n in range(5):
            _record("g", f"old-{n}", timedelta(days=30))
        db.session.commit()
        old = ProcessedEvent.processed_at < utcnow() - timedelta(days=1)
        assert delete_in_batches(ProcessedEvent, old, batch_size=2, max_batches=2) == 4
        assert len(_remembered()) == 1
        assert delete_in_batches(ProcessedEvent, old, batch_size=2, max_batches=2) == 1
        assert _remembered() == set()


def test_the_worker_forgets_processed_events_past_the_retention_and_remembers_the_rest(app):
    """PROCESSED_EVENTS_RETENTION_HOURS (336 by default): a record 15 days old goes, of every consumer
    group; one 13 days old stays, so a redelivery of its event is still recognised."""
    with app.app_context():
        assert app.config["SERVICE"].processed_events_retention_hours == 336
        _record("reservations", "fifteen-days", timedelta(days=15))
        _record("users", "fifteen-days", timedelta(days=15))
        _record("reservations", "thirteen-days", timedelta(days=13))
        _record("users", "just-now", timedelta(0))
        db.session.commit()
    background = app.extensions["servicekit.background"]
    job = next(j for j in background.jobs if j.name == "forget-processed-events")
    assert job.exclusive  # one replica at a time
    assert Scheduler(app, [job]).run_due() == 1
    with app.app_context():
        assert _remembered() == {("reservations", "thirteen-days"), ("users", "just-now")}


def test_a_shorter_retention_is_taken_from_the_environment(app):
    background = app.extensions["servicekit.background"]
    job = next(j for j in background.jobs if j.name == "forget-processed-events")
    original = app.config["SERVICE"]
    app.config["SERVICE"] = replace(original, processed_events_retention_hours=1)
    try:
        with app.app_context():
            _record("g", "two-hours", timedelta(hours=2))
            _record("g", "half-an-hour", timedelta(minutes=30))
            db.session.commit()
        assert Scheduler(app, [job]).run_due() == 1
        with app.app_context():
            assert _remembered() == {("g", "half-an-hour")}
    finally:
        app.config["SERVICE"] = original


@pytest.mark.parametrize("raw", ["0", "-3", "two weeks"])
def test_a_retention_that_is_not_a_positive_number_of_hours_is_refused_at_start_up(raw):
    with pytest.raises(ConfigError, match="PROCESSED_EVENTS_RETENTION_HOURS"):
        BaseConfig.from_env({"DATABASE_URL": "postgresql+psycopg://x@h/d", "PROCESSED_EVENTS_RETENTION_HOURS": raw})


def test_the_outbox_keeps_what_is_not_published_and_forgets_what_was_published_a_week_ago(app):
    from servicekit.outbox import OutboxRelay

    def outbox_row(event_id: str, published_days_ago: float | None) -> dict:
        published = None if published_days_ago is None else utcnow() - timedelta(days=published_days_ago)
        return {
            "event_id": event_id,
            "topic": "kit-events",
            "key": "1",
            "event_type": "kit.tested",
            "envelope": {},
            "published_at": published,
            "created_at": utcnow() - timedelta(days=30),
        }

    ids = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(4)]
    with app.app_context():
        db.session.execute(
            insert(OutboxEvent),
            [outbox_row(ids[0], 8), outbox_row(ids[1], 6), outbox_row(ids[2], None), outbox_row(ids[3], 30)],
        )
        db.session.commit()
        OutboxRelay(app).housekeeping()
        kept = set(db.session.execute(select(OutboxEvent.event_id)).scalars())
    assert kept == {ids[1], ids[2]}
