"""Notification e-mail: composed from reservation events (`compose`), queued in `outgoing_emails`
by the mail consumer (`queue_notifications`), sent by the `MailSender` worker with retries. Never
sent inside a request: a mail server that is down delays mail and never fails or undoes a booking.
A mail that cannot be sent fails alone: every other mail of its batch still goes."""

from __future__ import annotations

import email.policy
import logging
import smtplib
from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, make_msgid, parseaddr

from flask import Flask
from sqlalchemy import Row, bindparam, func, insert, select, update

from servicekit.db import db, delete_in_batches, utcnow
from servicekit.metrics import metrics_of
from servicekit.worker import LeasedQueue, PollingWorker

from .calendars import SERIES_EVENTS, invitation_for_event
from .ical import Person, invitation_part, room_label
from .ical import person as person_of
from .models import OutgoingEmail, RoomReplica, UserReplica
from .policies import zone_of

log = logging.getLogger(__name__)


def _when(start: str, end: str) -> str:
    s, e = datetime.fromisoformat(start), datetime.fromisoformat(end)
    return (
        f"{s:%A %d %B %Y, %H:%M} to {e:%H:%M} UTC"
        if s.date() == e.date()
        else f"{s:%A %d %B %Y %H:%M} UTC to {e:%A %d %B %Y %H:%M} UTC"
    )


_ROOM = select(RoomReplica.name, RoomReplica.location, RoomReplica.deleted).where(RoomReplica.room_id == bindparam("id"))
_USER = select(UserReplica.email, UserReplica.full_name, UserReplica.is_active).where(UserReplica.user_id == bindparam("id"))


class Replicas:
    """The rooms and people one notification names, as the replicas know them: each read once, as a
    plain row by Core (loading ORM objects for two names was a quarter of the mail worker's CPU)."""

    def __init__(self) -> None:
        self._rooms: dict[int, Row | None] = {}
        self._users: dict[int, Row | None] = {}

    def room(self, room_id: int) -> Row | None:
        if room_id not in self._rooms:
            self._rooms[room_id] = db.session.connection().execute(_ROOM, {"id": room_id}).first()
        return self._rooms[room_id]

    def user(self, user_id: int) -> Row | None:
        if user_id not in self._users:
            self._users[user_id] = db.session.connection().execute(_USER, {"id": user_id}).first()
        return self._users[user_id]

    def room_line(self, room_id: int) -> str:
        return room_label(self.room(room_id), room_id)

    def person(self, user_id: int) -> Person | None:
        return person_of(self.user(user_id))


FIELD_LABELS = {
    "room_id": "room",
    "start_time": "start",
    "end_time": "end",
    "title": "title",
    "description": "description",
    "attendees": "attendees",
}


def describe_changes(previous: dict | None, current: dict, replicas: Replicas) -> list[str]:
    if not previous:
        return []
    lines = []
    for field, label in FIELD_LABELS.items():
        before, after = previous.get(field), current.get(field)
        if before != after:
            if field == "room_id":
                before, after = replicas.room_line(before), replicas.room_line(after)
            elif field in ("start_time", "end_time"):
                before, after = (
                    f"{datetime.fromisoformat(before):%Y-%m-%d %H:%M} UTC",
                    f"{datetime.fromisoformat(after):%Y-%m-%d %H:%M} UTC",
                )
            elif field == "attendees":
                before, after = ", ".join(before or []) or "none", ", ".join(after or []) or "none"
            lines.append(f"  {label}: {before} -> {after}")
    return lines


def _cancellation_reason(data: dict, replicas: Replicas) -> str:
    if data.get("reason") == "blackout":
        why = data.get("blackout_reason")
        return "The room is not available at that time" + (f": {why}." if why else ".")
    room = replicas.room(data["room_id"])
    if room is not None and room.deleted:
        return "The room was removed from the booking system."
    owner = replicas.user(data["user_id"])
    if owner is not None and not owner.is_active:
        return "The organiser's account was deactivated."
    return "It was cancelled by its organiser or an administrator."


def _local_when(item: dict, zone_name: str) -> str:
    zone = zone_of(zone_name)
    s = datetime.fromisoformat(item["start_time"]).astimezone(zone)
    e = datetime.fromisoformat(item["end_time"]).astimezone(zone)
    return f"{s:%a %d %b %Y, %H:%M}–{e:%H:%M}" if s.date() == e.date() else f"{s:%a %d %b %Y %H:%M} – {e:%a %d %b %Y %H:%M}"


def compose_series(event_type: str, data: dict, replicas: Replicas) -> tuple[str, str]:
    """One mail for a whole series: every date booked (or cancelled), and the ones skipped with why."""
    room, zone = replicas.room_line(data["room_id"]), data["timezone"]
    dates = [f"  {_local_when(item, zone)} (#{item['id']})" for item in data["occurrences"]]
    header = f'"{data["title"]}"\nRoom: {room}\nRepeats: {data["recurrence"]} (times in {zone})\n'
    if event_type == "reservation.series_cancelled":
        return (
            f"Cancelled: {data['title']} — {len(dates)} occurrences — {room}",
            f"These occurrences of your recurring booking were cancelled and their slots are free again.\n\n{header}\n"
            + "\n".join(dates)
            + f"\n\nSeries #{data['id']}.\n",
        )
    body = f"Your recurring booking is confirmed.\n\n{header}\nBooked ({len(dates)}):\n" + "\n".join(dates) + "\n"
    if data.get("skipped"):
        body += f"\nNot booked ({len(data['skipped'])}):\n" + "\n".join(
            f"  {_local_when(item, zone)}: {item['message']}" for item in data["skipped"]
        )
        body += "\n"
    return f"Booked: {data['title']} — {len(dates)} occurrences — {room}", body + f"\nSeries #{data['id']}.\n"


def compose(event_type: str, data: dict, previous: dict | None, replicas: Replicas) -> tuple[str, str] | None:
    """(subject, body) of the notification for one reservation event, or None if there is nothing to say."""
    if event_type in SERIES_EVENTS:
        return compose_series(event_type, data, replicas)
    room, when = replicas.room_line(data["room_id"]), _when(data["start_time"], data["end_time"])
    header = f'"{data["title"]}"\nRoom: {room}\nWhen: {when}\n'
    if event_type == "reservation.created" and data.get("waitlist_entry_id"):
        return (
            f"Booked from your waitlist: {data['title']} — {room}",
            f"The time you were waiting for became free and is now booked for you.\n\n{header}\n"
            f"Reservation #{data['id']} (waitlist entry #{data['waitlist_entry_id']}).\n",
        )
    if event_type == "reservation.created":
        return f"Booked: {data['title']} — {room}", f"Your reservation is confirmed.\n\n{header}\nReservation #{data['id']}.\n"
    if event_type == "reservation.released":
        return (
            f"Released: {data['title']} — {room}",
            f"Nobody checked in within {data.get('grace_minutes', 0)} minutes of the start, so the room was released "
            f"for others.\n\n{header}\nReservation #{data['id']}.\n",
        )
    if event_type == "reservation.updated":
        changes = describe_changes(previous, data, replicas)
        if not changes:
            return None
        return f"Changed: {data['title']} — {room}", f"Your reservation was changed.\n\n{header}\nWhat changed:\n" + "\n".join(
            changes
        ) + f"\n\nReservation #{data['id']}.\n"
    if event_type == "reservation.cancelled":
        return (
            f"Cancelled: {data['title']} — {room}",
            f"This reservation was cancelled and its slot is free again.\n\n{header}\n{_cancellation_reason(data, replicas)}\n\nReservation #{data['id']}.\n",
        )
    return None


def queue_notifications(event_id: str, event_type: str, data: dict, previous: dict | None) -> int:
    """Queue the mail for the owner and the attendees (inside the consumer's transaction)."""
    replicas = Replicas()
    message = compose(event_type, data, previous, replicas)
    if message is None:
        return 0
    owner = replicas.person(int(data["user_id"]))
    if owner is None:
        # Not known yet: user-events will tell; the consumer retries this event.
        raise LookupError(f"user {data['user_id']} is not known yet")
    recipients = list(dict.fromkeys([owner.email, *data.get("attendees", [])]))
    subject, body = message
    room_id = int(data["room_id"])
    calendar = invitation_for_event(event_type, data, location=replicas.room_line(room_id), organizer=owner)
    rows = [
        {"event_id": event_id, "recipient": recipient, "subject": subject, "body": body, "calendar": calendar}
        for recipient in recipients
    ]
    db.session.connection().execute(_INSERT_OUTGOING_EMAIL, rows)  # Core: no unit of work to flush at commit
    return len(recipients)


_INSERT_OUTGOING_EMAIL = insert(OutgoingEmail.__table__)


# The stdlib's MIME classes with their compat32 policy: a third of the CPU of `EmailMessage` with the default
# policy, whose header registry parsed every header we set (half the mail worker's time went to building mail).
_UTF8_QUOTED = Charset("utf-8")
_UTF8_QUOTED.body_encoding = QP  # text stays readable and no line passes SMTP's 998 octets


def build_message(config, recipient: str, subject: str, body: str, calendar: str | None = None) -> Message:
    """One notification: plain text, with the invitation as its text/calendar alternative if given.
    A header value with a line break is refused (ValueError): it could add headers of its own."""
    if any(c in value for value in (recipient, subject) for c in "\r\n"):
        raise ValueError("a line break in a mail header")
    text = MIMEText(body, "plain", _UTF8_QUOTED)
    message = MIMEMultipart("alternative", _subparts=[text, invitation_part(calendar)]) if calendar else text
    # A display name that is not ASCII becomes an encoded word; the address itself stays as it is.
    message["From"] = formataddr(parseaddr(config.smtp_from), charset="utf-8")
    message["To"] = recipient
    message["Message-ID"] = make_msgid(domain="meeting-rooms.local")
    if recipient.isascii():
        message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")  # RFC 2047 encoded word
    else:
        # An internationalised address (RFC 6531): smtplib sends it with SMTPUTF8, which needs a policy that
        # writes headers as UTF-8.
        message["Subject"] = subject
        message.policy = email.policy.SMTPUTF8
    return message


def send_email(
    config, recipient: str, subject: str, body: str, calendar: str | None = None, *, smtp: smtplib.SMTP | None = None
) -> None:
    """Send one notification, over `smtp` if given (a connection the caller keeps), else a new one."""
    message = build_message(config, recipient, subject, body, calendar)
    if smtp is not None:
        smtp.send_message(message)
        return
    with connect_smtp(config) as connection:
        connection.send_message(message)


def connect_smtp(config) -> smtplib.SMTP:
    smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=10)
    try:
        if config.smtp_starttls:
            smtp.starttls()
        if config.smtp_username:
            smtp.login(config.smtp_username, config.smtp_password)
    except Exception:
        smtp.close()
        raise
    return smtp


OUTGOING = LeasedQueue(
    table="outgoing_emails",
    ready="q.sent_at IS NULL AND q.failed_at IS NULL AND q.next_attempt_at <= now()",
    lease_column="next_attempt_at",
    returning="id, recipient, subject, body, calendar, attempts",
)
LEASE_SECONDS = 60
MAX_BACKOFF_SECONDS = 900
# Errors that no retry can cure (a header that cannot be encoded, ...): the mail is given up at once.
PERMANENT_ERRORS = (ValueError, TypeError, UnicodeError)


def forget_settled_mail(retention: timedelta) -> int:
    """Worker job: delete the mails sent or given up more than `retention` ago (MAIL_RETENTION_DAYS); returns
    how many. A mail still to send is never deleted, however old."""
    cutoff = utcnow() - retention
    return delete_in_batches(OutgoingEmail, (OutgoingEmail.sent_at < cutoff) | (OutgoingEmail.failed_at < cutoff))


class MailSender(PollingWorker):
    """Sends queued mail in batches over one SMTP connection. A mail whose sending fails, for any
    reason, is retried alone with backoff and given up (logged, counted) after `MAIL_MAX_ATTEMPTS`,
    or at once when the error is permanent; the rest of the batch is sent regardless."""

    name = "mail-sender"

    def __init__(self, app: Flask, *, idle_seconds: float = 0.2, batch_size: int = 50):
        super().__init__(app, idle_seconds=idle_seconds)
        self.config = app.config["SERVICE"]
        self.batch_size = batch_size
        metrics = metrics_of(app)
        self.sent = metrics.counter("emails_sent_total", "Notification e-mails sent")
        self.failed = metrics.counter("emails_failed_total", "Notification e-mails given up after the last attempt")
        self.retried = metrics.counter("emails_retried_total", "Failed sending attempts that will be retried")

    def poll_once(self) -> int:
        return self.send_due()

    def send_due(self, limit: int | None = None) -> int:
        """Claim a batch of due mail and send each; returns how many were claimed."""
        rows = OUTGOING.claim(db.session, limit or self.batch_size, LEASE_SECONDS)
        if not rows:
            return 0
        smtp: smtplib.SMTP | None = None
        sent: list[int] = []
        try:
            for row in rows:
                try:
                    smtp = smtp or connect_smtp(self.config)
                    send_email(self.config, row.recipient, row.subject, row.body, row.calendar, smtp=smtp)
                except Exception as exc:
                    if smtp is not None and not isinstance(exc, PERMANENT_ERRORS):
                        smtp.close()  # the connection may be unusable after a transport error
                        smtp = None
                    self._failed(row.id, row.attempts, exc)
                    continue
                sent.append(row.id)
        finally:
            if smtp is not None:
                try:
                    smtp.quit()
                except (OSError, smtplib.SMTPException):
                    smtp.close()
            if sent:
                db.session.execute(
                    update(OutgoingEmail).where(OutgoingEmail.id.in_(sent)).values(sent_at=func.now(), last_error=None)
                )
                db.session.commit()
                self.sent.inc(len(sent))
        return len(rows)

    def _failed(self, row_id: int, attempts: int, exc: Exception) -> None:
        error = f"{exc.__class__.__name__}: {exc}"
        if attempts >= self.config.mail_max_attempts or isinstance(exc, PERMANENT_ERRORS):
            db.session.execute(
                update(OutgoingEmail).where(OutgoingEmail.id == row_id).values(failed_at=func.now(), last_error=error[:2000])
            )
            self.failed.inc()
            log.error("giving up e-mail %s after %d attempts: %s", row_id, attempts, error)
        else:
            OUTGOING.retry_later(db.session, row_id, error, MAX_BACKOFF_SECONDS)
            self.retried.inc()
            log.warning("e-mail %s not sent (attempt %d), will retry: %s", row_id, attempts, error)
        db.session.commit()
