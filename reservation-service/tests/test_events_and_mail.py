"""reservation-events, the cascades from room and user events, and e-mail through a real SMTP server."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import datetime

import requests
from conftest import booking
from flask_migrate import upgrade
from sqlalchemy import select, text

from app import create_app
from app.mail import MailSender, queue_notifications
from app.models import OutgoingEmail, RoomReplica, UserReplica
from devstack.components import SmtpSink
from devstack.processes import free_port
from servicekit.db import db
from servicekit.testing import wait_until


def mails_to(mail_dir, recipient: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == recipient:
            found.append(message)
    return found


def test_each_change_publishes_its_event_once(client, people, rooms, topics):
    _, headers = people.user()
    room = rooms.create()
    created = client.post("/api/reservations", json=booking(room["id"]), headers=headers).get_json()
    client.put(f"/api/reservations/{created['id']}", json={"title": "Renamed"}, headers=headers)
    client.put(f"/api/reservations/{created['id']}", json={"title": "Renamed"}, headers=headers)  # no change, no event
    client.delete(f"/api/reservations/{created['id']}", headers=headers)
    events = topics.collect("reservation-events", lambda key, value: key == str(created["id"]), expect=3, settle=1.5)
    assert [e["event_type"] for e in events] == ["reservation.created", "reservation.updated", "reservation.cancelled"]
    assert events[0]["data"] == created and events[0]["producer"] == "reservation-service"
    assert events[1]["data"]["title"] == "Renamed" and events[2]["data"]["status"] == "cancelled"


def test_a_rejected_booking_publishes_nothing(client, people, rooms, topics):
    _, headers = people.user()
    room = rooms.create()
    client.post("/api/reservations", json=booking(room["id"]), headers=headers)
    assert client.post("/api/reservations", json=booking(room["id"]), headers=headers).status_code == 409
    events = topics.collect(
        "reservation-events", lambda key, value: value["data"].get("room_id") == room["id"], expect=2, timeout=8
    )
    assert len(events) == 1


def test_the_owner_and_attendees_get_a_confirmation_saying_which_room_and_when(client, people, rooms, infrastructure):
    user, headers = people.user()
    room = rooms.create()
    created = client.post(
        "/api/reservations", json=booking(room["id"], attendees=["guest@example.com"]), headers=headers
    ).get_json()
    messages = wait_until(lambda: mails_to(infrastructure.mail_dir, user["email"]), message="the confirmation e-mail")
    body = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert messages[0]["Subject"].startswith("Booked: Planning")
    assert room["name"] in body and "UTC" in body and f"#{created['id']}" in body
    start = datetime.fromisoformat(created["start_time"])
    assert f"{start:%H:%M}" in body
    assert wait_until(
        lambda: [
            m
            for m in mails_to(infrastructure.mail_dir, "guest@example.com")
            if f"#{created['id']}" in m.get_body(preferencelist=("plain",)).get_content()
        ],
        message="the attendee's copy",
    )


def test_a_change_e_mail_says_what_changed(client, people, rooms, infrastructure):
    user, headers = people.user()
    room = rooms.create()
    created = client.post("/api/reservations", json=booking(room["id"]), headers=headers).get_json()
    wait_until(lambda: mails_to(infrastructure.mail_dir, user["email"]), message="the confirmation")
    client.put(f"/api/reservations/{created['id']}", json={"title": "Budget review"}, headers=headers)
    changed = wait_until(
        lambda: [m for m in mails_to(infrastructure.mail_dir, user["email"]) if m["Subject"].startswith("Changed")],
        message="the change e-mail",
    )
    assert "title: Planning -> Budget review" in changed[0].get_body(preferencelist=("plain",)).get_content()


def test_deleting_a_room_cancels_its_future_reservations_with_events_and_mail(client, app, people, rooms, topics, infrastructure):
    user, headers = people.user()
    room = rooms.create()
    other_room = rooms.create()
    doomed = client.post("/api/reservations", json=booking(room["id"], 0), headers=headers).get_json()
    kept = client.post("/api/reservations", json=booking(other_room["id"], 0), headers=headers).get_json()
    with app.app_context():  # a meeting under way in the room (no API books the past): it is not cancelled
        in_progress = db.session.execute(
            text(
                "INSERT INTO reservations (room_id, user_id, title, start_time, end_time) "
                "VALUES (:room, :user, 'Under way', now() - interval '30 minutes', now() + interval '30 minutes') RETURNING id"
            ),
            {"room": room["id"], "user": user["id"]},
        ).scalar_one()
        db.session.commit()
    rooms.publish("room.deleted", room)
    wait_until(
        lambda: client.get(f"/api/reservations/{doomed['id']}", headers=headers).get_json()["status"] == "cancelled",
        message="the cascade",
    )
    assert client.get(f"/api/reservations/{kept['id']}", headers=headers).get_json()["status"] == "confirmed"
    assert client.get(f"/api/reservations/{in_progress}", headers=headers).get_json()["status"] == "confirmed"
    events = topics.collect("reservation-events", lambda key, value: key == str(doomed["id"]), expect=2)
    assert [e["event_type"] for e in events] == ["reservation.created", "reservation.cancelled"]
    cancelled_mail = wait_until(
        lambda: [m for m in mails_to(infrastructure.mail_dir, user["email"]) if m["Subject"].startswith("Cancelled")],
        message="the cancellation e-mail",
    )
    assert "room was removed" in cancelled_mail[0].get_body(preferencelist=("plain",)).get_content()
    assert (
        client.post("/api/reservations", json=booking(room["id"], 5), headers=headers).status_code == 422
    )  # a deleted room cannot be booked


def test_deactivating_a_user_cancels_their_future_reservations_and_refuses_their_token(client, people, rooms, user_service):
    user, headers = people.user()
    _, admin = people.admin()
    room = rooms.create()
    mine = client.post("/api/reservations", json=booking(room["id"]), headers=headers).get_json()
    response = requests.put(f"{user_service}/api/users/{user['id']}", json={"is_active": False}, headers=admin, timeout=10)
    assert response.status_code == 200
    wait_until(lambda: client.get("/api/reservations", headers=headers).status_code == 401, message="the token to be refused")
    # user.updated (which revokes) and user.deactivated (which cancels) are two events: wait for the second.
    wait_until(
        lambda: client.get(f"/api/reservations/{mine['id']}", headers=admin).get_json()["status"] == "cancelled",
        message="the cascade",
    )


def test_mail_waits_while_the_smtp_server_is_down_and_goes_when_it_returns(config, fresh_database, people, tmp_path):
    """A reservation-service whose SMTP server is down, on its own database so no other sender interferes."""
    user, headers = people.user()
    port = free_port()
    down_app = create_app(replace(config, database_url=fresh_database("mail_down"), smtp_port=port))
    with down_app.app_context():
        upgrade()
        db.session.add(RoomReplica(room_id=7, name="Lovelace", capacity=4, location="Floor 1", is_active=True))
        db.session.add(UserReplica(user_id=user["id"], email=user["email"], full_name="Booker", is_active=True))
        db.session.commit()
    created = down_app.test_client().post("/api/reservations", json=booking(7), headers=headers)
    assert created.status_code == 201  # a booking never waits for mail
    reservation = created.get_json()
    sender = MailSender(down_app, idle_seconds=0.2)
    with down_app.app_context():
        queue_notifications("evt-1", "reservation.created", reservation, None)  # what the mail consumer does
        db.session.commit()
        assert sender.send_due() == 1
        row = db.session.execute(select(OutgoingEmail)).scalar_one()
        assert row.sent_at is None and row.attempts == 1 and "ConnectionRefused" in row.last_error
    sink = SmtpSink(port, tmp_path / "mail", tmp_path)
    sink.start()
    sender.start()
    try:
        delivered = wait_until(lambda: mails_to(tmp_path / "mail", user["email"]), timeout=30, message="the delayed mail")
    finally:
        sender.stop()
        sink.stop()
    assert "Lovelace" in delivered[0].get_body(preferencelist=("plain",)).get_content()
    with down_app.app_context():
        assert db.session.execute(select(OutgoingEmail)).scalar_one().sent_at is not None


def test_a_mail_that_cannot_be_sent_fails_alone_and_the_others_of_its_batch_arrive(config, fresh_database, infrastructure):
    """A Subject with a line break raises ValueError when the message is built: that row is given up,
    the good one of the same batch goes through the real SMTP server."""
    own_app = create_app(replace(config, database_url=fresh_database("mail_poison")))
    with own_app.app_context():
        upgrade()
        poisoned = OutgoingEmail(event_id="evt-poison", recipient="poison@example.com", subject="Bad\nBcc: x", body="x")
        good = OutgoingEmail(event_id="evt-good", recipient="good-after-poison@example.com", subject="Fine", body="All good.")
        db.session.add_all([poisoned, good])
        db.session.commit()
        poisoned_id, good_id = poisoned.id, good.id
        assert MailSender(own_app).send_due() == 2
        db.session.expire_all()
        poisoned_row, good_row = db.session.get(OutgoingEmail, poisoned_id), db.session.get(OutgoingEmail, good_id)
        assert poisoned_row.failed_at is not None and poisoned_row.sent_at is None
        assert "ValueError" in poisoned_row.last_error
        assert good_row.sent_at is not None and good_row.failed_at is None
    delivered = wait_until(
        lambda: mails_to(infrastructure.mail_dir, "good-after-poison@example.com"), message="the good mail of the batch"
    )
    assert delivered[0].get_content().strip() == "All good."
    assert mails_to(infrastructure.mail_dir, "poison@example.com") == []


def test_a_sender_name_that_is_not_ascii_is_encoded_and_its_address_kept(config, fresh_database, infrastructure):
    """SMTP_FROM with a display name in French: the name arrives whole, and so does the address (in the
    header and as the envelope sender), not folded into one encoded word."""
    own_app = create_app(
        replace(config, database_url=fresh_database("mail_from"), smtp_from="Salle de réunion <salles@example.com>")
    )
    with own_app.app_context():
        upgrade()
        db.session.add(OutgoingEmail(event_id="evt-from", recipient="from-test@example.com", subject="Réservée", body="Oui."))
        db.session.commit()
        assert MailSender(own_app).send_due() == 1
    delivered = wait_until(lambda: mails_to(infrastructure.mail_dir, "from-test@example.com"), message="the mail")
    sender = delivered[0]["From"]
    assert (sender.addresses[0].display_name, sender.addresses[0].addr_spec) == ("Salle de réunion", "salles@example.com")
    assert delivered[0]["Subject"] == "Réservée" and delivered[0].get_content().strip() == "Oui."


def test_the_scheduler_purges_expired_idempotency_keys(app):
    from datetime import UTC, timedelta

    from app.models import IdempotencyKey

    now = datetime.now(UTC)
    with app.app_context():
        db.session.add_all(
            [
                IdempotencyKey(
                    user_id=1, key="expired", request_hash="0" * 64, state="done", expires_at=now - timedelta(hours=1)
                ),
                IdempotencyKey(
                    user_id=1, key="current", request_hash="0" * 64, state="done", expires_at=now + timedelta(hours=1)
                ),
            ]
        )
        db.session.commit()

    def keys():
        with app.app_context():
            return set(db.session.execute(select(IdempotencyKey.key).where(IdempotencyKey.user_id == 1)).scalars())

    scheduler = next(w for w in app.extensions["servicekit.background"].workers if w.__class__.__name__ == "Scheduler")
    for job in scheduler.jobs:
        job.next_run = 0  # due now, instead of within five minutes
    wait_until(lambda: keys() == {"current"}, message="the expired key to be purged")


def test_an_attendee_with_an_internationalised_address_gets_the_mail_and_its_invitation(client, people, rooms, infrastructure):
    """Sent with SMTPUTF8 (RFC 6531): the address is not ASCII, so its header is written as UTF-8."""
    user, headers = people.user()
    room = rooms.create()
    guest = f"josé.{user['id']}@例え.jp"
    created = client.post("/api/reservations", json=booking(room["id"], attendees=[guest]), headers=headers)
    assert created.status_code == 201, created.get_json()
    messages = wait_until(lambda: mails_to(infrastructure.mail_dir, guest), message="the attendee's mail")
    assert messages[0]["Subject"].startswith(f"Booked: Planning — {room['name']}")
    body = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert f"#{created.get_json()['id']}" in body
    invitation = messages[0].get_body(preferencelist=("calendar",))
    assert invitation.get_param("method") == "REQUEST" and guest in invitation.get_content().replace("\r\n ", "")


def test_the_worker_forgets_mail_settled_past_the_retention_and_never_a_mail_still_to_send(app):
    """MAIL_RETENTION_DAYS (30 by default): a mail sent or given up 31 days ago goes; one sent yesterday stays,
    and so does a mail still waiting for its next attempt, however old."""
    from datetime import UTC, timedelta

    now = datetime.now(UTC)
    long_ago, yesterday = now - timedelta(days=31), now - timedelta(days=1)
    settled = {
        "sent-long-ago": {"sent_at": long_ago},
        "given-up-long-ago": {"failed_at": long_ago},
        "sent-yesterday": {"sent_at": yesterday},
        "given-up-yesterday": {"failed_at": yesterday},
        "still-to-send": {"next_attempt_at": now + timedelta(minutes=5)},
        "still-to-send-since-long-ago": {"next_attempt_at": long_ago, "attempts": 9},
    }
    with app.app_context():
        assert app.config["SERVICE"].mail_retention_days == 30
        db.session.add_all(
            OutgoingEmail(event_id=f"retention-{name}", recipient="r@example.com", subject="s", body="b", **state)
            for name, state in settled.items()
        )
        db.session.commit()
    job = next(j for j in app.extensions["servicekit.background"].jobs if j.name == "forget-settled-mail")
    from servicekit.worker import Scheduler

    assert Scheduler(app, [job]).run_due() == 1
    with app.app_context():
        kept = set(db.session.execute(select(OutgoingEmail.event_id).where(OutgoingEmail.event_id.like("retention-%"))).scalars())
        db.session.execute(text("DELETE FROM outgoing_emails WHERE event_id LIKE 'retention-%'"))
        db.session.commit()
    assert kept == {f"retention-{name}" for name in ("sent-yesterday", "given-up-yesterday", "still-to-send")} | {
        "retention-still-to-send-since-long-ago"
    }
