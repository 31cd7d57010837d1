"""Notification e-mails: composed from reservation events, queued in `outgoing_emails`, sent by a
background worker with retries. Never sent inside a request: a mail server that is down delays
mail and never fails or undoes a booking."""

from __future__ import annotations

import logging
import smtplib
import threading
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from flask import Flask
from sqlalchemy import func, select, text, update

from servicekit.db import db
from servicekit.metrics import metrics_of

from .calendars import invitation_for_event
from .ical import attach_invitation
from .models import OutgoingEmail, RoomReplica, UserReplica

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
MAX_BACKOFF_SECONDS = 900


def _when(start: str, end: str) -> str:
    s, e = datetime.fromisoformat(start), datetime.fromisoformat(end)
    return (
        f"{s:%A %d %B %Y, %H:%M} to {e:%H:%M} UTC"
        if s.date() == e.date()
        else f"{s:%A %d %B %Y %H:%M} UTC to {e:%A %d %B %Y %H:%M} UTC"
    )


def _room_line(room_id: int) -> str:
    room = db.session.get(RoomReplica, room_id)
    if room is None:
        return f"Room #{room_id}"
    return f"{room.name}" + (f" ({room.location})" if room.location else "")


FIELD_LABELS = {
    "room_id": "room",
    "start_time": "start",
    "end_time": "end",
    "title": "title",
    "description": "description",
    "attendees": "attendees",
}


def describe_changes(previous: dict | None, current: dict) -> list[str]:
    if not previous:
        return []
    lines = []
    for field, label in FIELD_LABELS.items():
        before, after = previous.get(field), current.get(field)
        if before != after:
            if field == "room_id":
                before, after = _room_line(before), _room_line(after)
            elif field in ("start_time", "end_time"):
                before, after = (
                    f"{datetime.fromisoformat(before):%Y-%m-%d %H:%M} UTC",
                    f"{datetime.fromisoformat(after):%Y-%m-%d %H:%M} UTC",
                )
            elif field == "attendees":
                before, after = ", ".join(before or []) or "none", ", ".join(after or []) or "none"
            lines.append(f"  {label}: {before} -> {after}")
    return lines


def _cancellation_reason(data: dict) -> str:
    room = db.session.get(RoomReplica, data["room_id"])
    if room is not None and room.deleted:
        return "The room was removed from the booking system."
    owner = db.session.get(UserReplica, data["user_id"])
    if owner is not None and not owner.is_active:
        return "The organiser's account was deactivated."
    return "It was cancelled by its organiser or an administrator."


def compose(event_type: str, data: dict, previous: dict | None) -> tuple[str, str] | None:
    """(subject, body) of the notification for one reservation event, or None if there is nothing to say."""
    room, when = _room_line(data["room_id"]), _when(data["start_time"], data["end_time"])
    header = f'"{data["title"]}"\nRoom: {room}\nWhen: {when}\n'
    if event_type == "reservation.created":
        return f"Booked: {data['title']} — {room}", f"Your reservation is confirmed.\n\n{header}\nReservation #{data['id']}.\n"
    if event_type == "reservation.updated":
        changes = describe_changes(previous, data)
        if not changes:
            return None
        return f"Changed: {data['title']} — {room}", f"Your reservation was changed.\n\n{header}\nWhat changed:\n" + "\n".join(
            changes
        ) + f"\n\nReservation #{data['id']}.\n"
    if event_type == "reservation.cancelled":
        return (
            f"Cancelled: {data['title']} — {room}",
            f"This reservation was cancelled and its slot is free again.\n\n{header}\n{_cancellation_reason(data)}\n\nReservation #{data['id']}.\n",
        )
    return None


def queue_notifications(event_id: str, event_type: str, data: dict, previous: dict | None) -> int:
    """Queue the mail for the owner and the attendees (inside the consumer's transaction)."""
    message = compose(event_type, data, previous)
    if message is None:
        return 0
    owner = db.session.get(UserReplica, data["user_id"])
    if owner is None:
        # Not known yet: user-events will tell; the consumer retries this event.
        raise LookupError(f"user {data['user_id']} is not known yet")
    recipients = list(dict.fromkeys([owner.email, *data.get("attendees", [])]))
    subject, body = message
    calendar = invitation_for_event(event_type, data)
    for recipient in recipients:
        db.session.add(OutgoingEmail(event_id=event_id, recipient=recipient, subject=subject, body=body, calendar=calendar))
    return len(recipients)


def send_email(config, recipient: str, subject: str, body: str, calendar: str | None = None) -> None:
    message = EmailMessage()
    message["From"] = config.smtp_from
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="meeting-rooms.local")
    message.set_content(body)
    if calendar:
        attach_invitation(message, calendar)
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=10) as smtp:
        if config.smtp_starttls:
            smtp.starttls()
        if config.smtp_username:
            smtp.login(config.smtp_username, config.smtp_password)
        smtp.send_message(message)


_CLAIM = text(
    """
    UPDATE outgoing_emails SET next_attempt_at = now() + make_interval(secs => :lease), attempts = attempts + 1
    WHERE id IN (SELECT id FROM outgoing_emails
                 WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                 ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, recipient, subject, body, calendar, attempts
    """
)


class MailSender:
    """Sends queued mail; a failure is retried with backoff, and given up (logged, counted) after max attempts."""

    def __init__(self, app: Flask, *, idle_seconds: float = 0.5):
        self.app = app
        self.config = app.config["SERVICE"]
        self.idle_seconds = idle_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics = metrics_of(app)
        self.sent = metrics.counter("emails_sent_total", "Notification e-mails sent")
        self.failed = metrics.counter("emails_failed_total", "Notification e-mails given up after the last attempt")
        self.retried = metrics.counter("emails_retried_total", "Failed sending attempts that will be retried")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mail-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(15)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = 0
            with self.app.app_context():
                try:
                    sent = self.send_due()
                except Exception:
                    log.exception("mail sender iteration failed")
                    db.session.rollback()
            if not sent:
                self._stop.wait(self.idle_seconds)

    def send_due(self, limit: int = 20) -> int:
        rows = db.session.execute(_CLAIM, {"lease": LEASE_SECONDS, "limit": limit}).all()
        db.session.commit()
        for row_id, recipient, subject, body, calendar, attempts in rows:
            try:
                send_email(self.config, recipient, subject, body, calendar)
            except (OSError, smtplib.SMTPException) as exc:
                self._failed(row_id, attempts, f"{exc.__class__.__name__}: {exc}")
                continue
            db.session.execute(
                update(OutgoingEmail).where(OutgoingEmail.id == row_id).values(sent_at=func.now(), last_error=None)
            )
            db.session.commit()
            self.sent.inc()
        return len(rows)

    def _failed(self, row_id: int, attempts: int, error: str) -> None:
        if attempts >= self.config.mail_max_attempts:
            db.session.execute(
                update(OutgoingEmail).where(OutgoingEmail.id == row_id).values(failed_at=func.now(), last_error=error[:2000])
            )
            self.failed.inc()
            log.error("giving up e-mail %s after %d attempts: %s", row_id, attempts, error)
        else:
            backoff = min(MAX_BACKOFF_SECONDS, 2**attempts)
            db.session.execute(
                update(OutgoingEmail)
                .where(OutgoingEmail.id == row_id)
                .values(last_error=error[:2000], next_attempt_at=func.now() + text(f"interval '{int(backoff)} seconds'"))
            )
            self.retried.inc()
            log.warning("e-mail %s not sent (attempt %d), retrying in %ss: %s", row_id, attempts, backoff, error)
        db.session.commit()


def pending_count() -> int:
    return db.session.execute(
        select(func.count()).select_from(OutgoingEmail).where(OutgoingEmail.sent_at.is_(None), OutgoingEmail.failed_at.is_(None))
    ).scalar_one()
