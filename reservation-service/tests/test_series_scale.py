"""Issue 12, "Scale": a 200-occurrence daily series on a room that already holds 10,000 bookings is booked
without one query per occurrence, and quickly (the p50 is printed; README quotes it)."""

from __future__ import annotations

import statistics
import threading
import time as clock
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import event

from servicekit.db import db
from servicekit.testing import libpq_url

SEEDED = 10_000
OCCURRENCES = 200


def _seed(config, room_id: int) -> None:
    """10,000 confirmed bookings of the room by COPY: seven 50-minute slots a night (00:00-07:00 UTC),
    from about three years back to within the horizon, then ANALYZE."""
    url = libpq_url(config.database_url)
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=SEEDED // 7 - 300)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cursor:
            with cursor.copy("COPY reservations (room_id, user_id, title, start_time, end_time, status) FROM STDIN") as copy:
                for n in range(SEEDED):
                    start = first + timedelta(days=n // 7, hours=n % 7)
                    copy.write_row((room_id, 1, "Seeded", start, start + timedelta(minutes=50), "confirmed"))
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE reservations")


def test_a_200_occurrence_series_on_a_busy_room_issues_no_query_per_occurrence(app, config, client, people, rooms):
    _, admin = people.admin()  # admins are exempt from quotas, so the series is the whole 200
    room = rooms.create()
    _seed(config, room["id"])
    statements: list[str] = []
    here = threading.get_ident()  # the test client runs the request in this thread; workers run in others

    def count(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == here:
            statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    timings = []
    try:
        for n in range(7):
            start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
            start += timedelta(minutes=30 * n)
            body = {
                "room_id": room["id"],
                "title": "Daily",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(minutes=30)).isoformat(),
                "recurrence": f"FREQ=DAILY;COUNT={OCCURRENCES}",
            }
            statements.clear()
            began = clock.perf_counter()
            response = client.post("/api/reservations/series", json=body, headers=admin)
            timings.append((clock.perf_counter() - began) * 1000)
            assert response.status_code == 201, response.get_json()
            assert len(response.get_json()["occurrences"]) == OCCURRENCES
            assert len(statements) <= 20, "\n".join(s[:120] for s in statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    print(
        f"\n200-occurrence series on a room with {SEEDED:,} bookings: p50 {statistics.median(timings):.0f} ms, "
        f"min {min(timings):.0f} ms, max {max(timings):.0f} ms; {len(statements)} SQL statements"
    )
