"""`retried`: a unit of work run again, after a rollback, when PostgreSQL breaks a deadlock by aborting it or
when it says to look again; anything else propagates at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from servicekit.db import LookAgain, db, retried


class Busy(Exception):
    pass


def _busy():
    raise Busy


@pytest.fixture
def marks(app):
    """A table of its own: (name, n) rows a unit of work writes, to see which attempts' writes were kept."""
    with app.app_context():
        db.session.execute(text("DROP TABLE IF EXISTS retried_marks"))
        db.session.execute(text("CREATE TABLE retried_marks (name text PRIMARY KEY, n int NOT NULL)"))
        db.session.commit()
    yield
    with app.app_context():
        db.session.execute(text("DROP TABLE retried_marks"))
        db.session.commit()


def _names(app) -> list[tuple[str, int]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(text("SELECT name, n FROM retried_marks ORDER BY name"))]


def test_look_again_rolls_back_the_attempt_and_runs_it_again(app, marks):
    attempts, relocked = [], []

    def work() -> str:
        attempts.append(len(attempts))
        db.session.execute(text("INSERT INTO retried_marks VALUES (:name, :n)"), {"name": f"try-{len(attempts)}", "n": 0})
        if len(attempts) < 3:
            raise LookAgain
        db.session.commit()
        return "done"

    with app.app_context():
        assert retried(work, attempts=3, exhausted=_busy, before_retry=lambda: relocked.append(True)) == "done"
    assert len(attempts) == 3 and relocked == [True, True]
    assert _names(app) == [("try-3", 0)]  # the first two attempts' writes went with their rollback


def test_after_the_last_attempt_exhausted_answers_and_nothing_is_kept(app, marks):
    attempts = []

    def work():
        attempts.append(1)
        db.session.execute(text("INSERT INTO retried_marks VALUES (:name, 0)"), {"name": f"try-{len(attempts)}"})
        raise LookAgain

    with app.app_context(), pytest.raises(Busy):
        retried(work, attempts=2, exhausted=_busy)
    assert len(attempts) == 2 and _names(app) == []


def test_any_other_error_propagates_without_a_second_attempt(app, marks):
    attempts = []

    def work():
        attempts.append(1)
        raise ValueError("not a race")

    with app.app_context(), pytest.raises(ValueError):
        retried(work, attempts=3, exhausted=_busy)
    assert attempts == [1]


def test_the_victim_of_a_real_deadlock_runs_again_and_both_units_of_work_complete(app, marks):
    """Two units of work lock two rows in opposite orders: PostgreSQL aborts one (SQLSTATE 40P01); `retried`
    runs it again once the other has committed, so both add their one to both rows."""
    with app.app_context():
        db.session.execute(text("INSERT INTO retried_marks VALUES ('a', 0), ('b', 0)"))
        db.session.commit()
    both_hold_their_first = threading.Barrier(2, timeout=10)
    attempts = {"ab": 0, "ba": 0}
    errors = []

    def unit(order: str) -> None:
        def work() -> None:
            attempts[order] += 1
            first, second = order
            db.session.execute(text("UPDATE retried_marks SET n = n + 1 WHERE name = :name"), {"name": first})
            if attempts[order] == 1:
                both_hold_their_first.wait()  # each holds its first row: the second UPDATEs close the cycle
            db.session.execute(text("UPDATE retried_marks SET n = n + 1 WHERE name = :name"), {"name": second})
            db.session.commit()

        try:
            with app.app_context():
                retried(work, attempts=3, exhausted=_busy)
        except Exception as exc:  # reported below, with the thread's name
            errors.append((order, exc))

    threads = [threading.Thread(target=unit, args=(order,)) for order in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # exactly one was the victim, and ran again
    assert _names(app) == [("a", 2), ("b", 2)]
