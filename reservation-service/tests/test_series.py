"""Part 2 of API.md, "Recurring series": RRULEs expanded in the room's zone (DST included), each occurrence
through the single-booking rules, fail vs skip, races at the constraint, cancel from a date, one mail per series."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from conftest import against_a_rival_booking
from sqlalchemy import func, select, text
from test_events_and_mail import mails_to

from app.models import Reservation, ReservationSeries
from servicekit.db import db
from servicekit.testing import wait_until

URL = "/api/reservations/series"


def today() -> date:
    return datetime.now(UTC).date()


def next_weekday(weekday: int, weeks_ahead: int = 1) -> date:
    return today() + timedelta(days=(weekday - today().weekday()) % 7 + 7 * weeks_ahead)


def at(day: date, clock: str, zone: str = "UTC") -> datetime:
    hours, minutes = (int(part) for part in clock.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=ZoneInfo(zone))


def series_body(room: dict, day: date, recurrence: str, clock: str = "09:00", minutes: int = 60, **extra) -> dict:
    start = at(day, clock, room.get("timezone", "UTC"))
    return {
        "room_id": room["id"],
        "title": "Stand-up",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=minutes)).isoformat(),
        "recurrence": recurrence,
        **extra,
    }


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def starts(series: dict) -> list[datetime]:
    return [utc(o["start_time"]) for o in series["occurrences"]]


def local_starts(series: dict, zone: str) -> list[datetime]:
    return [s.astimezone(ZoneInfo(zone)).replace(tzinfo=None) for s in starts(series)]


def created(response) -> dict:
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def book_single(client, headers, room: dict, day: date, start: str, end: str) -> dict:
    """A single (non-recurring) booking "Taken" in `room` on `day` from `start` to `end` (UTC clock times)."""
    body = {
        "room_id": room["id"],
        "title": "Taken",
        "start_time": at(day, start).isoformat(),
        "end_time": at(day, end).isoformat(),
    }
    return created(client.post("/api/reservations", json=body, headers=headers))


def recurrence_error(response) -> str:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    errors = response.get_json()["errors"]
    assert errors[0]["field"] == "recurrence", errors
    return errors[0]["message"]


def count_in_room(app, room_id: int, status: str = "confirmed") -> int:
    with app.app_context():
        return db.session.execute(
            select(func.count()).select_from(Reservation).where(Reservation.room_id == room_id, Reservation.status == status)
        ).scalar_one()


def last_sunday(month: int, after: date) -> date:
    for year in (after.year, after.year + 1):
        day = date(year, month + 1, 1) - timedelta(days=1)
        day -= timedelta(days=(day.weekday() - 6) % 7)
        if day > after:
            return day
    raise AssertionError("unreachable")


def nth_sunday(month: int, n: int, after: date) -> date:
    for year in (after.year, after.year + 1):
        first = date(year, month, 1)
        day = first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))
        if day > after:
            return day
    raise AssertionError("unreachable")


# --- the rules -----------------------------------------------------------------------------------------


def test_daily_with_interval_and_count(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=3)
    series = created(client.post(URL, json=series_body(room, day, "FREQ=DAILY;INTERVAL=2;COUNT=4"), headers=headers))
    assert starts(series) == [at(day + timedelta(days=2 * n), "09:00") for n in range(4)]
    assert {o["series_id"] for o in series["occurrences"]} == {series["id"]}
    assert {o["status"] for o in series["occurrences"]} == {"confirmed"}
    assert series["skipped"] == [] and series["timezone"] == "UTC" and series["recurrence"] == "FREQ=DAILY;INTERVAL=2;COUNT=4"


def test_weekly_by_day_with_until(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    monday = next_weekday(0)
    until = (monday + timedelta(days=14)).strftime("%Y%m%d")  # a date: its whole day counts
    series = created(client.post(URL, json=series_body(room, monday, f"FREQ=WEEKLY;BYDAY=MO,WE;UNTIL={until}"), headers=headers))
    expected = [
        monday,
        monday + timedelta(days=2),
        monday + timedelta(days=7),
        monday + timedelta(days=9),
        monday + timedelta(days=14),
    ]
    assert starts(series) == [at(d, "09:00") for d in expected]


def test_weekly_every_other_week_until_a_utc_time(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    tuesday = next_weekday(1)
    until = at(tuesday + timedelta(days=28), "09:00").strftime("%Y%m%dT%H%M%SZ")  # inclusive
    series = created(client.post(URL, json=series_body(room, tuesday, f"FREQ=WEEKLY;INTERVAL=2;UNTIL={until}"), headers=headers))
    assert starts(series) == [at(tuesday + timedelta(days=14 * n), "09:00") for n in range(3)]


@pytest.mark.parametrize(
    ("by_day", "expected"),
    [
        ("1MO", lambda d: d.weekday() == 0 and d.day <= 7),
        ("-1FR", lambda d: d.weekday() == 4 and (d + timedelta(days=7)).month != d.month),
    ],
)
def test_monthly_by_day_with_ordinals(client, people, rooms, by_day, expected):
    _, headers = people.user()
    room = rooms.create()
    first = today() + timedelta(days=1)
    series = created(client.post(URL, json=series_body(room, first, f"FREQ=MONTHLY;BYDAY={by_day};COUNT=3"), headers=headers))
    days = [s.date() for s in starts(series)]
    assert len(days) == 3 and all(expected(d) for d in days)
    assert len({(d.year, d.month) for d in days}) == 3  # one a month, in consecutive months
    assert days == sorted(days) and days[0] >= first


def test_monthly_by_month_day_with_interval(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    first = today() + timedelta(days=1)
    series = created(
        client.post(URL, json=series_body(room, first, "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=15;COUNT=3"), headers=headers)
    )
    days = [s.date() for s in starts(series)]
    assert {d.day for d in days} == {15}
    months = [d.year * 12 + d.month for d in days]
    assert [b - a for a, b in zip(months, months[1:], strict=False)] == [2, 2]


def test_each_occurrence_is_an_ordinary_reservation(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    series = created(client.post(URL, json=series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=2"), headers=headers))
    one = series["occurrences"][1]
    assert client.get(f"/api/reservations/{one['id']}", headers=headers).get_json() == one
    listed = client.get(f"/api/reservations?room_id={room['id']}", headers=headers).get_json()["items"]
    assert [r["id"] for r in listed] == [o["id"] for o in series["occurrences"]]


# --- time zones and DST ---------------------------------------------------------------------------------


def test_a_weekly_berlin_meeting_keeps_9am_across_both_dst_changes(client, people, rooms):
    _, admin = people.admin()
    room = rooms.create(timezone="Europe/Berlin")
    spring = last_sunday(3, today() + timedelta(days=7))
    autumn = last_sunday(10, today() + timedelta(days=7))
    for change, before, after in ((spring, "08:00", "07:00"), (autumn, "07:00", "08:00")):
        monday = change - timedelta(days=6)  # the Monday before the change
        series = created(client.post(URL, json=series_body(room, monday, "FREQ=WEEKLY;COUNT=2"), headers=admin))
        assert starts(series) == [at(monday, before), at(monday + timedelta(days=7), after)]  # UTC
        assert {t.time() for t in local_starts(series, "Europe/Berlin")} == {time(9)}
        assert series["timezone"] == "Europe/Berlin"


def test_a_weekly_new_york_meeting_keeps_9am_across_both_dst_changes(client, people, rooms):
    _, admin = people.admin()
    room = rooms.create(timezone="America/New_York")
    spring = nth_sunday(3, 2, today() + timedelta(days=7))
    autumn = nth_sunday(11, 1, today() + timedelta(days=7))
    for change, before, after in ((spring, "14:00", "13:00"), (autumn, "13:00", "14:00")):
        friday = change - timedelta(days=2)
        series = created(client.post(URL, json=series_body(room, friday, "FREQ=WEEKLY;COUNT=2"), headers=admin))
        assert starts(series) == [at(friday, before), at(friday + timedelta(days=7), after)]
        assert {t.time() for t in local_starts(series, "America/New_York")} == {time(9)}


def test_gap_and_fold_are_resolved_as_rfc_5545_says(client, people, rooms):
    """02:30 does not exist on the spring-forward day (read with the offset before the gap: 01:30Z = 03:30 CEST)
    and exists twice on the fall-back day (the first one: 00:30Z = 02:30 CEST)."""
    _, admin = people.admin()
    room = rooms.create(timezone="Europe/Berlin")
    for change, expected in (
        (last_sunday(3, today() + timedelta(days=3)), "01:30"),
        (last_sunday(10, today() + timedelta(days=3)), "00:30"),
    ):
        day_before = change - timedelta(days=1)
        series = created(
            client.post(URL, json=series_body(room, day_before, "FREQ=DAILY;COUNT=3", clock="02:30", minutes=30), headers=admin)
        )
        assert starts(series)[1] == at(change, expected)
        assert all(utc(o["end_time"]) - utc(o["start_time"]) == timedelta(minutes=30) for o in series["occurrences"])


# --- conflicts -------------------------------------------------------------------------------------------


def test_fail_is_409_listing_each_clashing_occurrence_and_books_nothing(client, app, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=3)
    taken = [book_single(client, headers, room, d, "09:30", "10:30") for d in (day + timedelta(days=1), day + timedelta(days=3))]
    response = client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=5"), headers=headers)
    assert response.status_code == 409 and response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/series-conflict"
    assert [utc(o["start_time"]) for o in problem["occurrences"]] == [at(day + timedelta(days=n), "09:00") for n in (1, 3)]
    assert [o["reason"] for o in problem["occurrences"]] == ["conflict", "conflict"]
    assert [[c["reservation_id"] for c in o["conflicts"]] for o in problem["occurrences"]] == [[t["id"]] for t in taken]
    assert count_in_room(app, room["id"]) == 2
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(ReservationSeries)).scalar_one() == 0


def test_skip_books_the_free_ones_and_lists_the_others_with_their_reason(client, app, people, rooms):
    _, headers = people.user()
    _, admin = people.admin()
    room = rooms.create(booking_policy={"open_hours": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}})
    monday = next_weekday(0)
    book_single(client, headers, room, monday, "09:00", "09:30")
    tuesday = monday + timedelta(days=1)
    blackout = client.post(
        "/api/blackouts",
        json={
            "room_id": room["id"],
            "start_time": at(tuesday, "00:00").isoformat(),
            "end_time": at(tuesday, "23:00").isoformat(),
            "reason": "Painting",
        },
        headers=admin,
    )
    assert blackout.status_code == 201
    series = created(client.post(URL, json=series_body(room, monday, "FREQ=DAILY;COUNT=7", on_conflict="skip"), headers=headers))
    assert [s.date() for s in starts(series)] == [monday + timedelta(days=n) for n in (2, 3, 4)]
    skipped = {utc(s["start_time"]).date(): s["reason"] for s in series["skipped"]}
    assert skipped == {
        monday: "conflict",
        tuesday: "blackout",
        monday + timedelta(days=5): "closed",
        monday + timedelta(days=6): "closed",
    }
    assert "Painting" in next(s["message"] for s in series["skipped"] if s["reason"] == "blackout")
    assert client.get(f"{URL}/{series['id']}", headers=headers).get_json() == series


def test_quotas_count_per_occurrence(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=2)
    # MAX_FUTURE_BOOKINGS is 50: a 52-day series passes it with its last two occurrences.
    response = client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=52", minutes=30), headers=headers)
    assert response.status_code == 409
    assert [o["reason"] for o in response.get_json()["occurrences"]] == ["quota", "quota"]
    assert "MAX_FUTURE_BOOKINGS" in response.get_json()["occurrences"][0]["message"]
    series = created(
        client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=52", minutes=30, on_conflict="skip"), headers=headers)
    )
    assert len(series["occurrences"]) == 50 and [s["reason"] for s in series["skipped"]] == ["quota", "quota"]


def test_attendees_above_the_rooms_capacity_are_422(client, people, rooms):
    _, headers = people.user()
    room = rooms.create(capacity=1)
    body = series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=2", attendees=["a@example.com", "b@example.com"])
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "attendees"


def test_two_overlapping_series_racing_exactly_one_wins(base_url, app, people, rooms):
    room = rooms.create()
    day = today() + timedelta(days=2)
    bookers = [people.user()[1] for _ in range(6)]
    barrier = threading.Barrier(len(bookers))

    def attempt(n: int) -> int:
        body = series_body(room, day + timedelta(days=n % 2), "FREQ=DAILY;COUNT=10", minutes=90)
        barrier.wait()
        return requests.post(f"{base_url}{URL}", json=body, headers=bookers[n], timeout=60).status_code

    with ThreadPoolExecutor(len(bookers)) as pool:
        statuses = list(pool.map(attempt, range(len(bookers))))
    assert sorted(statuses) == [201] + [409] * (len(bookers) - 1)
    assert count_in_room(app, room["id"]) == 10


def test_two_partly_overlapping_skip_series_racing_never_overlap(base_url, app, people, rooms):
    room = rooms.create()
    day = today() + timedelta(days=2)
    bookers = [people.user()[1] for _ in range(2)]
    barrier = threading.Barrier(2)

    def attempt(n: int) -> dict:
        body = series_body(room, day + timedelta(days=2 * n), "FREQ=DAILY;COUNT=4", on_conflict="skip")
        barrier.wait()
        response = requests.post(f"{base_url}{URL}", json=body, headers=bookers[n], timeout=60)
        assert response.status_code == 201, response.text
        return response.json()

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(attempt, range(2))
    assert len(first["occurrences"]) + len(second["occurrences"]) == 6  # the two shared days went to one of them
    assert len(first["skipped"]) + len(second["skipped"]) == 2
    assert count_in_room(app, room["id"]) == 6 and _overlapping_pairs(app) == 0


def _overlapping_pairs(app) -> int:
    with app.app_context():
        return db.session.execute(
            text(
                "SELECT count(*) FROM reservations a JOIN reservations b ON a.id < b.id AND a.room_id = b.room_id "
                "AND a.during && b.during WHERE a.status = 'confirmed' AND b.status = 'confirmed'"
            )
        ).scalar_one()


@pytest.mark.parametrize("on_conflict", ["fail", "skip"])
def test_a_series_losing_the_race_at_the_constraint(config, client, app, people, rooms, on_conflict):
    """A rival inserts an overlapping booking and commits after the series' check ran: the constraint catches it;
    fail answers 409 naming it, skip books around it. No overlap either way."""
    user, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=2)
    body = series_body(room, day, "FREQ=DAILY;COUNT=3", on_conflict=on_conflict)
    rival_start = at(day + timedelta(days=1), "09:00")
    rival_id, response = against_a_rival_booking(
        config,
        (room["id"], user["id"], rival_start, rival_start + timedelta(minutes=60)),
        lambda: client.post(URL, json=body, headers=headers),
        "the series' insert to wait on the rival transaction",
    )
    if on_conflict == "fail":
        assert response.status_code == 409
        assert [c["reservation_id"] for c in response.get_json()["occurrences"][0]["conflicts"]] == [rival_id]
        assert count_in_room(app, room["id"]) == 1
    else:
        series = created(response)
        assert [s.date() for s in starts(series)] == [day, day + timedelta(days=2)]
        assert [utc(s["start_time"]) for s in series["skipped"]] == [rival_start]
    assert _overlapping_pairs(app) == 0


# --- one occurrence alone, cancel from a date ------------------------------------------------------------


def test_one_occurrence_is_moved_alone_and_the_series_shows_it(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=2)
    series = created(client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=3"), headers=headers))
    second = series["occurrences"][1]
    moved = client.put(
        f"/api/reservations/{second['id']}",
        json={
            "start_time": at(day + timedelta(days=1), "14:00").isoformat(),
            "end_time": at(day + timedelta(days=1), "15:00").isoformat(),
        },
        headers=headers,
    ).get_json()
    assert moved["series_id"] == series["id"] and moved["sequence"] == second["sequence"] + 1
    assert client.delete(f"/api/reservations/{series['occurrences'][2]['id']}", headers=headers).status_code == 204
    now = client.get(f"{URL}/{series['id']}", headers=headers).get_json()
    assert [o["status"] for o in now["occurrences"]] == ["confirmed", "confirmed", "cancelled"]
    assert utc(now["occurrences"][1]["start_time"]) == at(day + timedelta(days=1), "14:00")
    assert now["occurrences"][0] == series["occurrences"][0]


def test_cancel_from_a_date_leaves_the_earlier_occurrences(client, people, rooms, topics):
    _, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=2)
    series = created(client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=5"), headers=headers))
    since = at(day + timedelta(days=2), "09:00").isoformat().replace("+00:00", "Z")
    assert client.delete(f"{URL}/{series['id']}?from={since}", headers=headers).status_code == 204
    now = client.get(f"{URL}/{series['id']}", headers=headers).get_json()
    assert [o["status"] for o in now["occurrences"]] == ["confirmed"] * 2 + ["cancelled"] * 3
    assert all(o["sequence"] == 1 for o in now["occurrences"][2:])
    events = topics.collect(
        "reservation-events",
        lambda key, value: value["event_type"] == "reservation.cancelled" and value["data"].get("series_id") == series["id"],
        expect=3,
    )
    assert sorted(e["data"]["id"] for e in events) == [o["id"] for o in series["occurrences"][2:]]
    assert client.delete(f"{URL}/{series['id']}", headers=headers).status_code == 204  # the rest, from now
    assert {o["status"] for o in client.get(f"{URL}/{series['id']}", headers=headers).get_json()["occurrences"]} == {"cancelled"}


def test_only_the_owner_or_an_admin_reads_or_cancels_a_series(client, people, rooms):
    _, owner = people.user()
    _, stranger = people.user()
    _, admin = people.admin()
    room = rooms.create()
    series = created(client.post(URL, json=series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=2"), headers=owner))
    assert client.get(f"{URL}/{series['id']}", headers=stranger).status_code == 403
    assert client.delete(f"{URL}/{series['id']}", headers=stranger).status_code == 403
    assert client.get(f"{URL}/{series['id']}", headers=admin).status_code == 200
    assert client.get(f"{URL}/{series['id'] + 1000}", headers=owner).status_code == 404
    assert client.delete(f"{URL}/{series['id']}?from=yesterday", headers=owner).status_code == 422


def test_occurrence_events_carry_the_series_id(client, people, rooms, topics):
    _, headers = people.user()
    room = rooms.create()
    series = created(client.post(URL, json=series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=3"), headers=headers))
    events = topics.collect(
        "reservation-events",
        lambda key, value: value["event_type"] == "reservation.created" and value["data"].get("room_id") == room["id"],
        expect=3,
    )
    assert sorted(e["data"]["id"] for e in events) == [o["id"] for o in series["occurrences"]]
    assert {e["data"]["series_id"] for e in events} == {series["id"]}


# --- idempotency -----------------------------------------------------------------------------------------


def test_an_idempotent_replay_returns_the_first_series_and_books_nothing_new(client, app, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    body = series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=3")
    first = client.post(URL, json=body, headers={**headers, "Idempotency-Key": "weekly-1"})
    again = client.post(URL, json=body, headers={**headers, "Idempotency-Key": "weekly-1"})
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert first.headers["Location"] == f"{URL}/{first.get_json()['id']}"
    assert count_in_room(app, room["id"]) == 3
    other = client.post(URL, json={**body, "title": "Other"}, headers={**headers, "Idempotency-Key": "weekly-1"})
    assert other.status_code == 422 and other.get_json()["errors"][0]["field"] == "Idempotency-Key"


# --- mail ------------------------------------------------------------------------------------------------


def plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_one_mail_per_series_listing_the_dates_and_the_skipped_ones(client, people, rooms, infrastructure):
    user, headers = people.user()
    room = rooms.create(timezone="Europe/Berlin")
    day = today() + timedelta(days=3)
    taken = {
        "room_id": room["id"],
        "title": "Taken",
        "start_time": at(day + timedelta(days=1), "09:00", "Europe/Berlin").isoformat(),
        "end_time": at(day + timedelta(days=1), "10:00", "Europe/Berlin").isoformat(),
    }
    _, other = people.user()
    assert client.post("/api/reservations", json=taken, headers=other).status_code == 201
    series = created(client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=4", on_conflict="skip"), headers=headers))
    booked_mail = wait_until(
        lambda: [m for m in mails_to(infrastructure.mail_dir, user["email"]) if f"Series #{series['id']}" in plain(m)],
        message="the series confirmation",
    )
    since = at(day + timedelta(days=3), "00:00", "Europe/Berlin").isoformat()
    assert client.delete(f"{URL}/{series['id']}", query_string={"from": since}, headers=headers).status_code == 204
    wait_until(
        lambda: len([m for m in mails_to(infrastructure.mail_dir, user["email"]) if f"Series #{series['id']}" in plain(m)]) == 2,
        message="the series cancellation",
    )
    mails = mails_to(infrastructure.mail_dir, user["email"])
    assert len(mails) == 2  # one per series create, one per series cancellation; none per occurrence
    body = plain(booked_mail[0])
    assert booked_mail[0]["Subject"].startswith("Booked: Stand-up — 3 occurrences")
    for n in (0, 2, 3):
        assert f"{day + timedelta(days=n):%d %b %Y}, 09:00–10:00" in body
    assert "Not booked (1):" in body and f"{day + timedelta(days=1):%d %b %Y}, 09:00–10:00" in body.split("Not booked")[1]
    cancelled = next(m for m in mails if m["Subject"].startswith("Cancelled:"))
    assert f"{day + timedelta(days=3):%d %b %Y}" in plain(cancelled) and f"{day:%d %b %Y}" not in plain(cancelled)
    # The calendar parts: the series' VEVENT (RRULE, the skipped day as EXDATE), then the cancelled occurrence.
    uid = f"series-{series['id']}@meeting-rooms.local"
    (request,) = calendar_parts(booked_mail[0])
    assert request[0] == "REQUEST"
    (master,) = request[1].walk("VEVENT")
    assert str(master["UID"]) == uid and master["RRULE"].to_ical().decode() == "FREQ=DAILY;COUNT=4"
    assert master["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert [d.dt.astimezone(UTC) for d in master["EXDATE"].dts] == [utc(taken["start_time"])]
    (cancel,) = calendar_parts(cancelled)
    assert cancel[0] == "CANCEL"
    assert [(str(e["UID"]), e.decoded("RECURRENCE-ID").astimezone(UTC)) for e in cancel[1].walk("VEVENT")] == [
        (uid, utc(series["occurrences"][-1]["start_time"]))
    ]


def calendar_parts(message) -> list:
    from icalendar import Calendar

    return [
        (part.get_param("method"), Calendar.from_ical(part.get_content()))
        for part in message.walk()
        if part.get_content_type() == "text/calendar"
    ]


# --- 422s ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("FREQ=SECONDLY;COUNT=3", "FREQ"),
        ("FREQ=HOURLY;COUNT=3", "FREQ"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1;COUNT=3", "BYSETPOS"),
        ("FREQ=DAILY;BYHOUR=9,10;COUNT=3", "BYHOUR"),
        ("FREQ=WEEKLY", "COUNT"),
        ("FREQ=WEEKLY;COUNT=2;UNTIL=20300101", "COUNT"),
        ("FREQ=WEEKLY;BYDAY=1MO;COUNT=2", "ordinals"),
        ("FREQ=WEEKLY;BYDAY=XX;COUNT=2", "RRULE"),
        ("FREQ=DAILY;COUNT=two", "COUNT"),
        ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL"),
        ("FREQ=DAILY;UNTIL=20000101", "no occurrence"),
        ("not a rule", "NAME=VALUE"),
        ("FREQ=DAILY;COUNT=201", "MAX_SERIES_OCCURRENCES"),
        ("FREQ=DAILY;INTERVAL=30;COUNT=20", "horizon"),
        ("FREQ=DAILY;UNTIL=29991231", "horizon"),
        ("FREQ=DAILY;INTERVAL=0;COUNT=3", "INTERVAL"),
        ("FREQ=DAILY;COUNT=0", "COUNT"),
        ("FREQ=MONTHLY;BYMONTHDAY=32;COUNT=2", "BYMONTHDAY"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1", "BYMONTHDAY"),  # no such day: refused, not searched for
        ("FREQ=MONTHLY;BYDAY=9MO;COUNT=2", "cannot be expanded"),
    ],
)
def test_unsupported_or_oversized_rules_are_422_naming_recurrence(client, app, people, rooms, rule, says):
    _, admin = people.admin()
    room = rooms.create()
    response = client.post(URL, json=series_body(room, today() + timedelta(days=2), rule), headers=admin)
    assert says in recurrence_error(response)
    assert count_in_room(app, room["id"]) == 0


def test_a_missing_or_ill_typed_recurrence_is_422(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    body = series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=2")
    for broken, field in (
        ({k: v for k, v in body.items() if k != "recurrence"}, "recurrence"),
        ({**body, "recurrence": 7}, "recurrence"),
        ({**body, "on_conflict": "merge"}, "on_conflict"),
    ):
        response = client.post(URL, json=broken, headers=headers)
        assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == field


def test_the_configured_maximum_applies(app, client, people, rooms):
    from dataclasses import replace

    settings = app.extensions["reservation-service.booking"]
    _, admin = people.admin()
    room = rooms.create()
    app.extensions["reservation-service.booking"] = replace(settings, max_series_occurrences=3)
    try:
        response = client.post(URL, json=series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=4"), headers=admin)
        assert "At most 3" in recurrence_error(response)
        created(client.post(URL, json=series_body(room, today() + timedelta(days=2), "FREQ=DAILY;COUNT=3"), headers=admin))
    finally:
        app.extensions["reservation-service.booking"] = settings


def test_skip_with_no_free_occurrence_is_409_not_an_empty_series(client, app, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    day = today() + timedelta(days=2)
    created(client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=2"), headers=headers))
    response = client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=2", on_conflict="skip"), headers=headers)
    assert response.status_code == 409 and len(response.get_json()["occurrences"]) == 2
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(ReservationSeries)).scalar_one() == 1


def test_a_blackout_and_a_room_deletion_cancel_occurrences_like_any_booking(client, people, rooms):
    _, headers = people.user()
    _, admin = people.admin()
    room = rooms.create()
    day = today() + timedelta(days=2)
    series = created(client.post(URL, json=series_body(room, day, "FREQ=DAILY;COUNT=3"), headers=headers))
    blackout = {
        "room_id": room["id"],
        "start_time": at(day + timedelta(days=1), "00:00").isoformat(),
        "end_time": at(day + timedelta(days=2), "00:00").isoformat(),
        "reason": "Fire drill",
    }
    assert client.post("/api/blackouts", json=blackout, headers=admin).status_code == 201
    statuses = [o["status"] for o in client.get(f"{URL}/{series['id']}", headers=headers).get_json()["occurrences"]]
    assert statuses == ["confirmed", "cancelled", "confirmed"]
    rooms.publish("room.deleted", room)
    wait_until(
        lambda: (
            {o["status"] for o in client.get(f"{URL}/{series['id']}", headers=headers).get_json()["occurrences"]} == {"cancelled"}
        ),
        message="the room's deletion to cancel the remaining occurrences",
    )
