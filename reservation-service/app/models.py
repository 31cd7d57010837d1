"""reservation-service tables: reservations (never overlapping), read models of rooms and users,
idempotency keys and outgoing e-mail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from servicekit.db import db


class Reservation(db.Model):
    __tablename__ = "reservations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    room_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    attendees: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="confirmed")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    # iCalendar SEQUENCE: 0 when booked, one more at every change or cancellation (feeds and mails agree).
    sequence: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # When the owner (or an admin) checked in; rooms with auto_release release bookings nobody checked in to.
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The recurring series this reservation is an occurrence of (0005_series), or null.
    # Its original start in the series (iCalendar RECURRENCE-ID): stays when the occurrence is moved.
    recurrence_id: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    series_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("reservation_series.id", name="fk_reservations_series_id")
    )
    # Half-open [start, end): one booking may end exactly when the next starts.
    during = mapped_column(TSTZRANGE, Computed("tstzrange(start_time, end_time, '[)')", persisted=True))

    __table_args__ = (
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint("status IN ('confirmed', 'cancelled', 'released')", name="status_known"),
        Index("ix_reservations_user_start", "user_id", "start_time"),
        # The guarantee: no two confirmed reservations of one room overlap, whatever the concurrency.
        ExcludeConstraint(
            ("room_id", "="),
            ("during", "&&"),
            name="no_overlapping_reservations",
            using="gist",
            where=text("status = 'confirmed'"),
        ),
        # The list's filters, each in the list's order, so a page never scans the table (0003_list_indexes).
        Index("ix_reservations_start_id", "start_time", "id"),
        Index("ix_reservations_room_start", "room_id", "start_time", "id"),
        Index("ix_reservations_status_start", "status", "start_time", "id"),
        # What the auto-release job scans: confirmed bookings nobody checked in to (0006_checkin).
        Index(
            "ix_reservations_unchecked_start",
            "start_time",
            postgresql_where=text("status = 'confirmed' AND checked_in_at IS NULL"),
        ),
        Index("ix_reservations_series_start", "series_id", "start_time", postgresql_where=text("series_id IS NOT NULL")),
        # A user's confirmed bookings by time, for the fair-use check (0009_user_quota_index).
        Index(
            "ix_reservations_user_during_confirmed",
            "user_id",
            "during",
            postgresql_using="gist",
            postgresql_where=text("status = 'confirmed'"),
        ),
        # Which rooms are busy in a window (availability, suggestions), across rooms (0007): keyed on the time
        # only, room_id included for index-only scans, so per-room questions keep the room-first exclusion
        # index (0008_finding).
        Index(
            "ix_reservations_during_confirmed",
            "during",
            postgresql_using="gist",
            postgresql_include=["room_id"],
            postgresql_where=text("status = 'confirmed'"),
        ),
    )

    # Server-side defaults (timestamps, status, the computed range) come back in the INSERT's RETURNING.
    __mapper_args__ = {"eager_defaults": True}

    def to_dict(self) -> dict:
        return reservation_dict(self)


def reservation_dict(r) -> dict:
    """A reservation as JSON: from a `Reservation`, or from a row of its columns (the booking's INSERT … RETURNING)."""
    return {
        "id": r.id,
        "room_id": r.room_id,
        "user_id": r.user_id,
        "title": r.title,
        "description": r.description,
        "start_time": r.start_time.isoformat(),
        "end_time": r.end_time.isoformat(),
        "attendees": list(r.attendees),
        "status": r.status,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
        "sequence": r.sequence,
        "checked_in_at": r.checked_in_at.isoformat() if r.checked_in_at else None,
        "series_id": r.series_id,
        "recurrence_id": r.recurrence_id.isoformat() if r.recurrence_id else None,
    }


class ReservationSeries(db.Model):
    """A recurring booking: the rule as sent, the room's zone it was expanded in, and what was skipped.
    Its occurrences are ordinary reservations pointing here (`Reservation.series_id`)."""

    __tablename__ = "reservation_series"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    room_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    recurrence: Mapped[str] = mapped_column(String(500), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    # [{"start_time", "end_time", "reason", "message"}]: the occurrences not booked (on_conflict "skip").
    skipped: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


class RoomReplica(db.Model):
    """What this service knows of a room, from `room-events` (or a REST look-up when it knew nothing)."""

    __tablename__ = "room_replicas"

    room_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False)
    location: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    # room-service's booking_policy; null for a room announced before rooms had one (the service's defaults apply)
    booking_policy: Mapped[dict | None] = mapped_column(JSONB)
    equipment: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))


class Blackout(db.Model):
    """A time when a room (room_id) or every room (room_id null) cannot be booked."""

    __tablename__ = "blackouts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    room_id: Mapped[int | None] = mapped_column(BigInteger)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    created_by: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    during = mapped_column(TSTZRANGE, Computed("tstzrange(start_time, end_time, '[)')", persisted=True))

    __table_args__ = (
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        Index("ix_blackouts_room_id_during", "room_id", "during", postgresql_using="gist"),
    )


class UserReplica(db.Model):
    """What this service knows of a user, from `user-events` (or a REST look-up)."""

    __tablename__ = "user_replicas"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False)


class IdempotencyKey(db.Model):
    """The first answer to a POST with an Idempotency-Key, per user."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)  # in_flight | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)


class OutgoingEmail(db.Model):
    """A notification to send; the mail sender retries it with backoff until it goes or is given up."""

    __tablename__ = "outgoing_emails"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The text/calendar part (METHOD:REQUEST or CANCEL) sent along, if any.
    calendar: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_outgoing_emails_due", "next_attempt_at", postgresql_where=text("sent_at IS NULL AND failed_at IS NULL")),
        # What the worker forgets settled mails by (mail.forget_settled_mail).
        Index("ix_outgoing_emails_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
        Index("ix_outgoing_emails_failed_at", "failed_at", postgresql_where=text("failed_at IS NOT NULL")),
    )


class NotifiedReservation(db.Model):
    """The reservation as last described to its owner by e-mail."""

    __tablename__ = "notified_reservations"

    reservation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot: Mapped[dict] = mapped_column(JSONB, nullable=False)


class CalendarToken(db.Model):
    """A revocable secret that lets a calendar app read a user's feeds without a bearer token."""

    __tablename__ = "calendar_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    # SHA-256 of the token, hex: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WaitlistEntry(db.Model):
    """Someone waiting for a room and window that is taken; booked for them when it frees up."""

    __tablename__ = "waitlist_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    room_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="waiting")
    reservation_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint("status IN ('waiting', 'booked', 'expired')", name="status_known"),
        Index("ix_waitlist_entries_user_id", "user_id", "id"),
        # First come, first served among the entries still waiting.
        Index("ix_waitlist_entries_waiting", "room_id", "id", postgresql_where=text("status = 'waiting'")),
    )
