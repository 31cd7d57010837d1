"""reservation-service settings, from environment variables only."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import (
    BaseConfig,
    env_field,
    parse_bool,
    parse_http_url,
    parse_non_negative_int,
    parse_positive_int,
)


@dataclass(frozen=True)
class ReservationServiceConfig(BaseConfig):
    service_name: str = "reservation-service"
    port: int = env_field("PORT", 5003, parse_positive_int, doc="HTTP port")
    jwks_url: str = env_field("JWKS_URL", parse=parse_http_url, required=True, doc="user-service's JWKS document")
    user_service_url: str = env_field("USER_SERVICE_URL", parse=parse_http_url, required=True, doc="base URL of user-service")
    room_service_url: str = env_field("ROOM_SERVICE_URL", parse=parse_http_url, required=True, doc="base URL of room-service")
    peer_timeout_seconds: int = env_field(
        "PEER_TIMEOUT_SECONDS", 2, parse_positive_int, doc="timeout of a call to a peer service"
    )
    max_duration_minutes: int = env_field("MAX_BOOKING_MINUTES", 720, parse_positive_int, doc="longest booking (default 12 h)")
    horizon_days: int = env_field("BOOKING_HORIZON_DAYS", 365, parse_positive_int, doc="how far ahead a booking may start")
    max_future_bookings: int = env_field(
        "MAX_FUTURE_BOOKINGS", 50, parse_positive_int, doc="confirmed upcoming bookings a user may hold (admins exempt)"
    )
    max_hours_per_week: int = env_field(
        "MAX_HOURS_PER_WEEK", 40, parse_positive_int, doc="hours a user may book per ISO week of the room's zone (admins exempt)"
    )
    max_attendees: int = env_field(
        "MAX_ATTENDEES", 100, parse_positive_int, doc="attendees per booking (and never above capacity)"
    )
    max_series_occurrences: int = env_field(
        "MAX_SERIES_OCCURRENCES", 200, parse_positive_int, doc="occurrences one recurring series may have"
    )
    idempotency_hours: int = env_field(
        "IDEMPOTENCY_KEY_HOURS", 24, parse_positive_int, doc="how long Idempotency-Key answers are kept"
    )
    public_base_url: str = env_field(
        "PUBLIC_BASE_URL",
        "",
        parse_http_url,
        doc="the gateway's public URL (https://rooms.example.com), used in the feed URLs handed out; "
        "unset: the host the client called, as the gateway forwards it",
    )
    smtp_host: str = env_field("SMTP_HOST", "localhost", doc="SMTP server for notifications")
    smtp_port: int = env_field("SMTP_PORT", 25, parse_positive_int, doc="SMTP port")
    smtp_from: str = env_field("SMTP_FROM", "Meeting Rooms <no-reply@meeting-rooms.local>", doc="From: of notifications")
    smtp_username: str = env_field("SMTP_USERNAME", "", doc="SMTP login (optional)")
    smtp_password: str = env_field("SMTP_PASSWORD", "", doc="SMTP password (optional)")
    smtp_starttls: bool = env_field("SMTP_STARTTLS", False, parse_bool, doc="use STARTTLS")
    mail_retention_days: int = env_field(
        "MAIL_RETENTION_DAYS", 30, parse_positive_int, doc="how long a mail sent or given up is kept (for an operator)"
    )
    mail_max_attempts: int = env_field(
        "MAIL_MAX_ATTEMPTS", 10, parse_positive_int, doc="sending attempts before a mail is given up (logged, counted)"
    )
    checkin_open_minutes: int = env_field(
        "CHECKIN_OPEN_MINUTES", 10, parse_non_negative_int, doc="check-in opens this many minutes before the start"
    )
    checkin_grace_minutes: int = env_field(
        "CHECKIN_GRACE_MINUTES",
        15,
        parse_non_negative_int,
        doc="check-in closes this many minutes after the start; then rooms with auto_release release the booking",
    )
    auto_release_poll_seconds: int = env_field(
        "AUTO_RELEASE_POLL_SECONDS", 30, parse_positive_int, doc="how often the worker releases no-shows"
    )
    waitlist_poll_seconds: int = env_field(
        "WAITLIST_POLL_SECONDS",
        5,
        parse_positive_int,
        doc="how often the worker books freed slots for the waitlist and expires entries",
    )
