"""Part 2 of API.md, "Check-in, auto-release, waitlist, reports": the check-in window, no-shows
released exactly once however many workers run, the freed slot booked for the waitlist (first come,
first served, every rule applied), expiry, and the utilisation report in JSON and CSV.

Time is not faked: bookings are placed so that their windows fall inside the test (a start a few
seconds ahead), and workers built with CHECKIN_GRACE_MINUTES=0 release them as soon as they start."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from conftest import booking, slot
from test_events_and_mail import mails_to

from app import checkin, create_app
from servicekit.db import db
from servicekit.metrics import metrics_of
from servicekit.testing import libpq_url, wait_until
from servicekit.worker import Job, Scheduler

PROBLEM = "application/problem+json"
AUTO_RELEASE = {"open_hours": None, "min_minutes": 5, "max_minutes": 720, "horizon_days": 365, "auto_release": True}


def soon(seconds: float, minutes: int = 30) -> tuple[str, str]:
    """A window starting `seconds` from now (so it starts while the test runs)."""
    start = datetime.now(UTC) + timedelta(seconds=seconds)
    return start.isoformat(), (start + timedelta(minutes=minutes)).isoformat()


def book(client, headers, room_id: int, start: str, end: str, title: str = "Stand-up") -> dict:
    response = client.post(
        "/api/reservations", json={"room_id": room_id, "title": title, "start_time": start, "end_time": end}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def wait_until_started(start: str) -> None:
    wait_until(lambda: datetime.now(UTC) > datetime.fromisoformat(start), message="the booking's start")


@pytest.fixture(scope="module")
def no_grace_app(config):
    """A second instance of the service with CHECKIN_GRACE_MINUTES=0 (same database), background not started."""
    return create_app(replace(config, checkin_grace_minutes=0))


def _database(config) -> str:
    return libpq_url(config.database_url)


def released_events(app, reservation_ids) -> dict[int, int]:
    from sqlalchemy import text

    with app.app_context():
        rows = db.session.execute(
            text("SELECT key, count(*) FROM outbox_events WHERE event_type = 'reservation.released' GROUP BY key")
        ).all()
        db.session.commit()
    counts = {int(key): n for key, n in rows}
    return {rid: counts.get(rid, 0) for rid in reservation_ids}


# --- check-in ---------------------------------------------------------------------------------------


def test_check_in_before_the_window_opens_is_409_saying_when_it_opens(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    reservation = book(client, headers, room["id"], *soon(11 * 60))
    response = client.post(f"/api/reservations/{reservation['id']}/check-in", headers=headers)
    assert response.status_code == 409 and response.mimetype == PROBLEM
    problem = response.get_json()
    opens = datetime.fromisoformat(reservation["start_time"]) - timedelta(minutes=10)
    assert datetime.fromisoformat(problem["opens_at"]) == opens
    assert "opens at" in problem["detail"] and opens.isoformat() in problem["detail"]
    assert client.get(f"/api/reservations/{reservation['id']}", headers=headers).get_json()["checked_in_at"] is None


def test_check_in_inside_the_window_is_200_and_idempotent(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    reservation = book(client, headers, room["id"], *soon(9 * 60))
    assert reservation["checked_in_at"] is None
    first = client.post(f"/api/reservations/{reservation['id']}/check-in", headers=headers)
    assert first.status_code == 200, first.get_json()
    checked_in_at = first.get_json()["checked_in_at"]
    assert checked_in_at is not None and first.get_json()["status"] == "confirmed"
    again = client.post(f"/api/reservations/{reservation['id']}/check-in", headers=headers)
    assert again.status_code == 200 and again.get_json()["checked_in_at"] == checked_in_at
    assert client.get(f"/api/reservations/{reservation['id']}", headers=headers).get_json()["checked_in_at"] == checked_in_at


def test_check_in_takes_no_body_or_an_empty_object_and_refuses_any_other_checking_nothing_in(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    reservation = book(client, headers, room["id"], *soon(9 * 60))
    path = f"/api/reservations/{reservation['id']}/check-in"
    for body, status in (("{", 400), ("[]", 400), ('{"checked_in_at": "2020-01-01T00:00:00Z"}', 422)):
        refused = client.post(path, data=body, content_type="application/json", headers=headers)
        assert refused.status_code == status and refused.mimetype == PROBLEM, body
    assert client.get(f"/api/reservations/{reservation['id']}", headers=headers).get_json()["checked_in_at"] is None
    assert client.post(path, json={}, headers=headers).status_code == 200


def test_only_the_owner_or_an_admin_checks_in(client, people, rooms):
    _, owner = people.user()
    _, stranger = people.user()
    _, admin = people.admin()
    room = rooms.create()
    reservation = book(client, owner, room["id"], *soon(60))
    assert client.post(f"/api/reservations/{reservation['id']}/check-in", headers=stranger).status_code == 403
    assert client.post("/api/reservations/999999999/check-in", headers=owner).status_code == 404
    assert client.post(f"/api/reservations/{reservation['id']}/check-in").status_code == 401
    assert client.post(f"/api/reservations/{reservation['id']}/check-in", headers=admin).status_code == 200


def test_check_in_after_the_grace_period_is_409_saying_when_it_closed(no_grace_app, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    client = no_grace_app.test_client()
    start, end = soon(1.5)
    reservation = book(client, headers, room["id"], start, end)
    wait_until_started(start)
    response = client.post(f"/api/reservations/{reservation['id']}/check-in", headers=headers)
    assert response.status_code == 409 and response.mimetype == PROBLEM
    problem = response.get_json()
    assert "closed at" in problem["detail"]
    assert datetime.fromisoformat(problem["closes_at"]) == datetime.fromisoformat(reservation["start_time"])


def test_a_cancelled_booking_cannot_be_checked_in(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    reservation = book(client, headers, room["id"], *soon(60))
    client.delete(f"/api/reservations/{reservation['id']}", headers=headers)
    response = client.post(f"/api/reservations/{reservation['id']}/check-in", headers=headers)
    assert response.status_code == 409 and "cancelled" in response.get_json()["detail"]


# --- auto-release ----------------------------------------------------------------------------------


def test_a_no_show_is_released_the_owner_mailed_and_the_freed_slot_booked_from_the_waitlist(
    client, people, rooms, infrastructure, no_grace_app, topics
):
    owner, owner_headers = people.user()
    waiter, waiter_headers = people.user()
    room = rooms.create(booking_policy=AUTO_RELEASE)
    start, end = soon(1.5, minutes=30)
    reservation = book(client, owner_headers, room["id"], start, end, title="Forgotten meeting")
    # Someone waits for the second half of that booking.
    later = (datetime.fromisoformat(start) + timedelta(minutes=10)).isoformat()
    entry = client.post(
        "/api/waitlist",
        json={"room_id": room["id"], "title": "Needs a room", "start_time": later, "end_time": end},
        headers=waiter_headers,
    )
    assert entry.status_code == 201, entry.get_json()
    assert entry.get_json()["status"] == "waiting"
    wait_until_started(start)
    with no_grace_app.app_context():
        released = checkin.release_no_shows(timedelta(0))
    assert reservation["id"] in released
    after = client.get(f"/api/reservations/{reservation['id']}", headers=owner_headers).get_json()
    assert after["status"] == "released" and after["sequence"] == reservation["sequence"] + 1
    [event] = topics.collect(
        "reservation-events", lambda key, value: key == str(reservation["id"]) and value["event_type"] == "reservation.released"
    )
    assert event["data"]["status"] == "released"
    mail = wait_until(
        lambda: [m for m in mails_to(infrastructure.mail_dir, owner["email"]) if m["Subject"].startswith("Released")],
        message="the release e-mail",
    )
    assert "Nobody checked in" in mail[0].get_body(preferencelist=("plain",)).get_content()
    # The session's worker runs the waitlist pass: the freed slot is booked for the waiter.
    booked = wait_until(
        lambda: [e for e in client.get("/api/waitlist", headers=waiter_headers).get_json()["items"] if e["status"] == "booked"],
        message="the waitlist entry to be booked",
    )
    new = client.get(f"/api/reservations/{booked[0]['reservation_id']}", headers=waiter_headers).get_json()
    assert new["user_id"] == waiter["id"] and new["status"] == "confirmed"
    assert (new["start_time"], new["end_time"]) == (
        datetime.fromisoformat(later).astimezone(UTC).isoformat(),
        datetime.fromisoformat(end).astimezone(UTC).isoformat(),
    )
    wait_until(
        lambda: [
            m for m in mails_to(infrastructure.mail_dir, waiter["email"]) if m["Subject"].startswith("Booked from your waitlist")
        ],
        message="the waitlist booking e-mail",
    )


def test_a_checked_in_booking_and_a_room_without_auto_release_are_never_released(client, people, rooms, no_grace_app):
    _, headers = people.user()
    releasing, plain = rooms.create(booking_policy=AUTO_RELEASE), rooms.create()
    start, end = soon(1.5)
    checked = book(client, headers, releasing["id"], start, end)
    kept = book(client, headers, plain["id"], start, end)
    assert client.post(f"/api/reservations/{checked['id']}/check-in", headers=headers).status_code == 200
    wait_until_started(start)
    with no_grace_app.app_context():
        released = checkin.release_no_shows(timedelta(0))
    assert checked["id"] not in released and kept["id"] not in released
    for reservation in (checked, kept):
        assert client.get(f"/api/reservations/{reservation['id']}", headers=headers).get_json()["status"] == "confirmed"


def test_a_booking_locked_by_one_worker_is_skipped_by_the_other(client, people, rooms, config, no_grace_app):
    _, admin = people.admin()
    first_room, second_room = rooms.create(booking_policy=AUTO_RELEASE), rooms.create(booking_policy=AUTO_RELEASE)
    start, end = soon(1.5)
    held = book(client, admin, first_room["id"], start, end)
    free = book(client, admin, second_room["id"], start, end)
    wait_until_started(start)
    # Another worker has claimed `held` and has not committed yet.
    with psycopg.connect(_database(config)) as other_worker:
        other_worker.execute("SELECT id FROM reservations WHERE id = %s FOR UPDATE", (held["id"],))
        with no_grace_app.app_context():
            released = checkin.release_no_shows(timedelta(0))
        assert free["id"] in released and held["id"] not in released
        other_worker.rollback()
    with no_grace_app.app_context():
        assert checkin.release_no_shows(timedelta(0)) == [held["id"]]
        assert checkin.release_no_shows(timedelta(0)) == []


def test_two_workers_release_each_no_show_exactly_once(client, people, rooms, config, no_grace_app):
    _, admin = people.admin()
    many = [rooms.create(booking_policy=AUTO_RELEASE) for _ in range(8)]
    start, end = soon(2)
    reservations = [book(client, admin, room["id"], start, end) for room in many]
    workers, worker_apps = [], []
    for _ in range(2):
        worker_app = create_app(replace(config, checkin_grace_minutes=0))
        worker_apps.append(worker_app)
        [job] = [j for j in worker_app.extensions["servicekit.background"].jobs if j.name == "release-no-shows"]
        workers.append(Scheduler(worker_app, [Job(job.name, 0.01, job.run)], tick_seconds=0.01))
    for worker in workers:
        worker.start()
    try:
        ids = [r["id"] for r in reservations]
        wait_until(lambda: all(n >= 1 for n in released_events(no_grace_app, ids).values()), message="every release")
    finally:
        for worker in workers:
            worker.stop()
    assert released_events(no_grace_app, ids) == {rid: 1 for rid in ids}
    # Each release counted once, by whichever worker made it.
    assert sum(metrics_of(a).registry.get_sample_value("reservations_released_total") for a in worker_apps) == len(ids)
    for reservation in reservations:
        body = client.get(f"/api/reservations/{reservation['id']}", headers=admin).get_json()
        assert body["status"] == "released" and body["sequence"] == 1


# --- waitlist --------------------------------------------------------------------------------------


def waitlist_entry(room_id: int, hours_ahead: float = 0, minutes: int = 60, title: str = "Waiting") -> dict:
    start, end = slot(hours_ahead, minutes)
    return {"room_id": room_id, "title": title, "start_time": start, "end_time": end}


def entries(client, headers) -> list[dict]:
    return client.get("/api/waitlist", headers=headers).get_json()["items"]


def cancel_and_expect_the_slot_to_skip(client, owner, taken: dict, skipped, next_in_line) -> None:
    """`owner` cancels `taken`: the entry of `next_in_line` is booked, the earlier one of `skipped` still waits."""
    client.delete(f"/api/reservations/{taken['id']}", headers=owner)
    wait_until(lambda: [e for e in entries(client, next_in_line) if e["status"] == "booked"], message="the next entry booked")
    assert [e["status"] for e in entries(client, skipped)] == ["waiting"]


def test_joining_the_waitlist_for_a_free_window_is_409_with_the_booking_it_would_be(client, people, rooms):
    _, headers = people.user()
    room = rooms.create()
    body = waitlist_entry(room["id"], 3)
    response = client.post("/api/waitlist", json=body, headers=headers)
    assert response.status_code == 409 and response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "/problems/slot-free" and "free" in problem["detail"]
    assert problem["booking"]["room_id"] == room["id"] and problem["booking"]["title"] == body["title"]
    assert datetime.fromisoformat(problem["booking"]["start_time"]) == datetime.fromisoformat(body["start_time"])


def test_waitlist_entries_are_private_and_removable(client, people, rooms):
    _, owner = people.user()
    _, waiter = people.user()
    _, other = people.user()
    room = rooms.create()
    client.post("/api/reservations", json=booking(room["id"], 4), headers=owner)
    response = client.post("/api/waitlist", json=waitlist_entry(room["id"], 4), headers=waiter)
    assert response.status_code == 201
    entry = response.get_json()
    assert set(entry) == {"id", "room_id", "user_id", "title", "start_time", "end_time", "status", "reservation_id", "created_at"}
    assert response.headers["Location"] == f"/api/waitlist/{entry['id']}"
    assert client.post("/api/waitlist", json=waitlist_entry(room["id"], 4), headers=waiter).status_code == 409
    assert [e["id"] for e in entries(client, waiter)] == [entry["id"]]
    assert entries(client, other) == []
    assert client.delete(f"/api/waitlist/{entry['id']}", headers=other).status_code == 404
    assert client.delete(f"/api/waitlist/{entry['id']}", headers=waiter).status_code == 204
    assert entries(client, waiter) == []


def test_waitlist_bad_input_is_422_naming_the_field(client, people, rooms):
    _, headers = people.user()
    room, closed = rooms.create(), rooms.create(is_active=False)
    start, end = slot(3)
    for body, field in [
        ({"room_id": room["id"], "title": "x", "start_time": end, "end_time": start}, "end_time"),
        ({"room_id": room["id"], "title": "x", "start_time": "2030-01-01T10:00:00", "end_time": end}, "start_time"),
        ({"room_id": room["id"], "start_time": start, "end_time": end}, "title"),
        ({"room_id": closed["id"], "title": "x", "start_time": start, "end_time": end}, "room_id"),
    ]:
        response = client.post("/api/waitlist", json=body, headers=headers)
        assert response.status_code == 422, (body, response.get_json())
        assert field in [e["field"] for e in response.get_json()["errors"]]


def test_the_earliest_waiting_entry_gets_the_freed_slot_first(client, people, rooms, infrastructure):
    _, owner = people.user()
    first, first_headers = people.user()
    second, second_headers = people.user()
    room = rooms.create()
    taken = client.post("/api/reservations", json=booking(room["id"], 5), headers=owner).get_json()
    assert client.post("/api/waitlist", json=waitlist_entry(room["id"], 5), headers=first_headers).status_code == 201
    assert client.post("/api/waitlist", json=waitlist_entry(room["id"], 5), headers=second_headers).status_code == 201
    client.delete(f"/api/reservations/{taken['id']}", headers=owner)
    [booked] = wait_until(
        lambda: [e for e in entries(client, first_headers) if e["status"] == "booked"], message="the first entry booked"
    )
    assert client.get(f"/api/reservations/{booked['reservation_id']}", headers=first_headers).get_json()["user_id"] == first["id"]
    assert [e["status"] for e in entries(client, second_headers)] == ["waiting"]
    # The next time it frees up, the second in line gets it.
    client.delete(f"/api/reservations/{booked['reservation_id']}", headers=first_headers)
    wait_until(lambda: [e for e in entries(client, second_headers) if e["status"] == "booked"], message="the second entry booked")


def test_an_entry_the_rules_now_refuse_is_skipped_for_the_next(client, people, rooms):
    _, owner = people.user()
    _, long_headers = people.user()
    _, short_headers = people.user()
    room = rooms.create()
    taken = client.post("/api/reservations", json=booking(room["id"], 6, minutes=120), headers=owner).get_json()
    assert client.post("/api/waitlist", json=waitlist_entry(room["id"], 6, minutes=120), headers=long_headers).status_code == 201
    assert client.post("/api/waitlist", json=waitlist_entry(room["id"], 6, minutes=60), headers=short_headers).status_code == 201
    # The room's policy changes: at most an hour per booking now.
    rooms.publish("room.updated", {**room, "booking_policy": {**AUTO_RELEASE, "auto_release": False, "max_minutes": 60}})

    def policy_known():
        from app.models import RoomReplica

        with client.application.app_context():
            replica = db.session.get(RoomReplica, room["id"])
            db.session.refresh(replica)
            return (replica.booking_policy or {}).get("max_minutes") == 60

    wait_until(policy_known, message="the new policy")
    cancel_and_expect_the_slot_to_skip(client, owner, taken, skipped=long_headers, next_in_line=short_headers)


def test_a_shortened_booking_frees_the_rest_for_the_waitlist(client, people, rooms):
    _, owner = people.user()
    _, waiter = people.user()
    room = rooms.create()
    taken = client.post("/api/reservations", json=booking(room["id"], 7, minutes=120), headers=owner).get_json()
    second_hour = waitlist_entry(room["id"], 8, minutes=60)
    assert client.post("/api/waitlist", json=second_hour, headers=waiter).status_code == 201
    shorter = client.put(f"/api/reservations/{taken['id']}", json={"end_time": slot(7, 60)[1]}, headers=owner)
    assert shorter.status_code == 200
    wait_until(lambda: [e for e in entries(client, waiter) if e["status"] == "booked"], message="the freed hour booked")


def test_entries_whose_start_passes_expire(client, people, rooms):
    _, owner = people.user()
    _, waiter = people.user()
    room = rooms.create()
    start, end = soon(1, minutes=30)
    book(client, owner, room["id"], start, end)
    later_start = (datetime.fromisoformat(start) + timedelta(seconds=1)).isoformat()
    body = {"room_id": room["id"], "title": "Too late", "start_time": later_start, "end_time": end}
    assert client.post("/api/waitlist", json=body, headers=waiter).status_code == 201
    wait_until(lambda: [e["status"] for e in entries(client, waiter)] == ["expired"], message="the entry to expire")


def test_entries_for_a_deleted_room_expire_at_once(client, people, rooms):
    _, owner = people.user()
    _, waiter = people.user()
    room, other = rooms.create(), rooms.create()
    start, end = soon(3600)  # far from passing while the test runs
    for where in (room, other):
        book(client, owner, where["id"], start, end)
        body = {"room_id": where["id"], "title": "Waiting", "start_time": start, "end_time": end}
        assert client.post("/api/waitlist", json=body, headers=waiter).status_code == 201
    rooms.publish("room.deleted", room)
    wait_until(
        lambda: {e["room_id"]: e["status"] for e in entries(client, waiter)} == {room["id"]: "expired", other["id"]: "waiting"},
        message="the deleted room's entry to expire, the other to keep waiting",
    )


# --- report ----------------------------------------------------------------------------------------

WEEKDAYS_8_TO_20 = {day: [["08:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def test_a_room_name_a_spreadsheet_would_run_as_a_formula_is_text_in_the_csv(client, people, rooms):
    _, admin = people.admin()
    risky = {f"{start}cmd|' /C calc'!A0 {uuid.uuid4().hex[:6]}": start for start in ("=", "+", "-", "@")}
    made = {rooms.create(name=name)["id"]: name for name in risky}
    period = {"from": "2027-03-01T00:00:00Z", "to": "2027-03-02T00:00:00Z"}
    as_csv = client.get("/api/reports/utilization", query_string=period, headers={**admin, "Accept": "text/csv"})
    names = {int(line["room_id"]): line["name"] for line in csv.DictReader(io.StringIO(as_csv.get_data(as_text=True)))}
    assert {room_id: names[room_id] for room_id in made} == {room_id: "'" + name for room_id, name in made.items()}
    as_json = client.get("/api/reports/utilization", query_string=period, headers=admin).get_json()
    assert {r["room_id"]: r["name"] for r in as_json["rooms"] if r["room_id"] in made} == made  # JSON as it is


def test_utilization_report_json_and_csv_agree(client, people, rooms):
    _, admin = people.admin()
    _, user = people.user()
    room = rooms.create(
        timezone="Europe/Berlin", booking_policy={**AUTO_RELEASE, "auto_release": False, "open_hours": WEEKDAYS_8_TO_20}
    )
    monday = "2027-03-01"
    kept = {
        "room_id": room["id"],
        "title": "Kept",
        "start_time": f"{monday}T09:00:00+01:00",
        "end_time": f"{monday}T11:00:00+01:00",
    }
    dropped = {**kept, "title": "Dropped", "start_time": f"{monday}T12:00:00+01:00", "end_time": f"{monday}T13:00:00+01:00"}
    assert client.post("/api/reservations", json=kept, headers=user).status_code == 201
    cancelled = client.post("/api/reservations", json=dropped, headers=user).get_json()
    client.delete(f"/api/reservations/{cancelled['id']}", headers=user)
    period = {"from": f"{monday}T00:00:00+01:00", "to": "2027-03-08T00:00:00+01:00"}
    assert client.get("/api/reports/utilization", query_string=period, headers=user).status_code == 403
    response = client.get("/api/reports/utilization", query_string=period, headers=admin)
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    [row] = [r for r in report["rooms"] if r["room_id"] == room["id"]]
    assert row == {
        "room_id": room["id"],
        "name": room["name"],
        "timezone": "Europe/Berlin",
        "booked_hours": 2.0,
        "open_hours": 60.0,
        "utilization": 3.3,
        "bookings": 1,
        "cancellations": 1,
        "releases": 0,
    }
    as_csv = client.get("/api/reports/utilization", query_string=period, headers={**admin, "Accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert [int(line["room_id"]) for line in lines] == [r["room_id"] for r in report["rooms"]]
    for line, room_row in zip(lines, report["rooms"], strict=True):
        assert float(line["booked_hours"]) == room_row["booked_hours"]
        assert float(line["open_hours"]) == room_row["open_hours"]
        for count in ("bookings", "cancellations", "releases"):
            assert int(line[count]) == room_row[count]
    assert sum(float(line["booked_hours"]) for line in lines) == pytest.approx(sum(r["booked_hours"] for r in report["rooms"]))


def test_utilization_report_needs_a_valid_period(client, people):
    _, admin = people.admin()
    assert client.get("/api/reports/utilization", headers=admin).status_code == 422
    backwards = {"from": "2027-03-08T00:00:00+01:00", "to": "2027-03-01T00:00:00+01:00"}
    response = client.get("/api/reports/utilization", query_string=backwards, headers=admin)
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "to"


def test_an_entry_over_its_owners_weekly_quota_is_skipped_for_the_next(client, people, rooms):
    _, owner = people.user()
    _, busy = people.user()
    _, next_in_line = people.user()
    room, elsewhere = rooms.create(), rooms.create()
    week = ["2027-04-05", "2027-04-06", "2027-04-07"]  # Monday to Wednesday of ISO week 2027-W14
    for day in week:  # 3 x 12 h + 4 h = MAX_HOURS_PER_WEEK (40)
        body = {"room_id": elsewhere["id"], "title": "Workshop", "start_time": f"{day}T08:00:00Z", "end_time": f"{day}T20:00:00Z"}
        assert client.post("/api/reservations", json=body, headers=busy).status_code == 201
    last = {
        "room_id": elsewhere["id"],
        "title": "Workshop",
        "start_time": "2027-04-08T08:00:00Z",
        "end_time": "2027-04-08T12:00:00Z",
    }
    assert client.post("/api/reservations", json=last, headers=busy).status_code == 201
    friday = {"room_id": room["id"], "title": "Review", "start_time": "2027-04-09T09:00:00Z", "end_time": "2027-04-09T10:00:00Z"}
    taken = client.post("/api/reservations", json=friday, headers=owner).get_json()
    assert client.post("/api/waitlist", json=friday, headers=busy).status_code == 201
    assert client.post("/api/waitlist", json=friday, headers=next_in_line).status_code == 201
    cancel_and_expect_the_slot_to_skip(client, owner, taken, skipped=busy, next_in_line=next_in_line)


def test_a_deleted_blackout_frees_its_time_for_the_waitlist(client, people, rooms):
    _, admin = people.admin()
    _, waiter = people.user()
    room = rooms.create()
    start, end = slot(9, 120)
    created = client.post(
        "/api/blackouts", json={"room_id": room["id"], "start_time": start, "end_time": end, "reason": "Painting"}, headers=admin
    ).get_json()
    assert client.post("/api/waitlist", json=waitlist_entry(room["id"], 9), headers=waiter).status_code == 201
    assert [e["status"] for e in entries(client, waiter)] == ["waiting"]
    assert client.delete(f"/api/blackouts/{created['id']}", headers=admin).status_code == 204
    wait_until(lambda: [e for e in entries(client, waiter) if e["status"] == "booked"], message="the entry booked")


def test_a_moved_booking_frees_its_old_time_for_the_waitlist(client, people, rooms):
    _, owner = people.user()
    _, waiter = people.user()
    room = rooms.create()
    taken = client.post("/api/reservations", json=booking(room["id"], 10), headers=owner).get_json()
    assert client.post("/api/waitlist", json=waitlist_entry(room["id"], 10), headers=waiter).status_code == 201
    start, end = slot(12)
    moved = client.put(f"/api/reservations/{taken['id']}", json={"start_time": start, "end_time": end}, headers=owner)
    assert moved.status_code == 200
    [entry] = wait_until(lambda: [e for e in entries(client, waiter) if e["status"] == "booked"], message="the entry booked")
    assert entry["reservation_id"] != taken["id"]


def test_a_released_booking_cannot_be_changed_and_cancelling_it_changes_nothing(client, people, rooms, no_grace_app):
    _, headers = people.user()
    room = rooms.create(booking_policy=AUTO_RELEASE)
    start, end = soon(1.5)
    reservation = book(client, headers, room["id"], start, end)
    wait_until_started(start)
    with no_grace_app.app_context():
        assert checkin.release_no_shows(timedelta(0)) == [reservation["id"]]
    changed = client.put(f"/api/reservations/{reservation['id']}", json={"title": "Back again"}, headers=headers)
    assert changed.status_code == 409 and "released" in changed.get_json()["detail"]
    assert client.delete(f"/api/reservations/{reservation['id']}", headers=headers).status_code == 204
    after = client.get(f"/api/reservations/{reservation['id']}", headers=headers).get_json()
    assert after["status"] == "released" and after["title"] == "Stand-up"
