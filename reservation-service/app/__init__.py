"""reservation-service: bookings that never overlap, schedules, notifications."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from config import ReservationServiceConfig
from servicekit.app import create_service_app
from servicekit.auth import JwksKeySource, TokenVerifier, init_auth
from servicekit.metrics import metrics_of
from servicekit.openapi import build_spec
from servicekit.peers import PeerClient

from . import (
    calendar_routes,
    checkin,
    checkin_routes,
    idempotency,
    kafka_consumer,
    routes,
    series_routes,
    services,
    waitlist,
)
from .directory import RoomDirectory, UserDirectory
from .mail import MailSender, forget_settled_mail
from .schemas import SCHEMAS


def create_app(config: ReservationServiceConfig | None = None) -> Flask:
    config = config or ReservationServiceConfig.from_env()
    spec = build_spec(
        "reservation-service",
        "Bookings that never overlap, room schedules, idempotent create, e-mail notifications.",
        SCHEMAS,
        responses={"CalendarFeed": calendar_routes.FEED_RESPONSE},
        schemas={"BookingRefused": routes.BOOKING_REFUSED},
    )
    app = create_service_app(__name__, config, openapi=spec, topics=tuple(kafka_consumer.OWNERS))
    verifier = TokenVerifier(
        JwksKeySource(config.jwks_url), issuer=config.jwt_issuer, audience=config.jwt_audience, algorithms=config.jwt_algorithms
    )
    init_auth(app, verifier)
    app.extensions["reservation-service.booking"] = services.BookingSettings(
        max_duration=timedelta(minutes=config.max_duration_minutes),
        horizon=timedelta(days=config.horizon_days),
        rooms=RoomDirectory(PeerClient("room-service", config.room_service_url, timeout=config.peer_timeout_seconds)),
        users=UserDirectory(PeerClient("user-service", config.user_service_url, timeout=config.peer_timeout_seconds)),
        max_future_bookings=config.max_future_bookings,
        max_hours_per_week=config.max_hours_per_week,
        max_attendees=config.max_attendees,
        max_series_occurrences=config.max_series_occurrences,
    )
    app.extensions["reservation-service.idempotency_ttl"] = timedelta(hours=config.idempotency_hours)
    app.register_blueprint(routes.reservations)
    app.register_blueprint(routes.blackouts)
    app.register_blueprint(series_routes.series)
    app.register_blueprint(calendar_routes.calendar)
    app.register_blueprint(routes.availability)
    routes.register_booking_metrics(app)
    background = app.extensions["servicekit.background"]
    background.add_worker(kafka_consumer.make_consumer)
    background.add_worker(kafka_consumer.make_mail_consumer)
    background.add_worker(MailSender)
    # Idempotency-Key answers are kept IDEMPOTENCY_KEY_HOURS; the expired ones are deleted here.
    background.add_job("purge-expired-idempotency-keys", 300, idempotency.purge_expired)
    # Mails sent or given up are kept MAIL_RETENTION_DAYS for an operator; older ones are deleted here.
    mail_retention = timedelta(days=config.mail_retention_days)
    background.add_job("forget-settled-mail", 600, lambda: forget_settled_mail(mail_retention))
    add_checkin_and_waitlist(app, config)
    return app


def add_checkin_and_waitlist(app: Flask, config: ReservationServiceConfig) -> None:
    """Check-in, the waitlist and the report (routes, counters), and the worker's jobs: releasing
    no-shows (claimed with SKIP LOCKED: every replica may run it) and the waitlist pass (exclusive:
    one replica at a time, so first come is first served)."""
    window = checkin_routes.make_checkin_window(config)
    app.extensions["reservation-service.checkin_window"] = window
    app.register_blueprint(checkin_routes.check_ins)
    app.register_blueprint(checkin_routes.waitlist_routes)
    app.register_blueprint(checkin_routes.report_routes)
    checkin_routes.register_checkin_metrics(app)
    settings = app.extensions["reservation-service.booking"]

    def release_no_shows() -> None:
        metrics_of(app).count("reservations_released_total", len(checkin.release_no_shows(window.grace)))

    def serve_waitlist() -> None:
        metrics_of(app).count("waitlist_expiries_total", waitlist.expire_passed())
        metrics_of(app).count("waitlist_bookings_total", len(waitlist.book_freed_slots(settings)))

    background = app.extensions["servicekit.background"]
    background.add_job("release-no-shows", config.auto_release_poll_seconds, release_no_shows)
    background.add_job("serve-waitlist", config.waitlist_poll_seconds, serve_waitlist, exclusive=True)
    background.add_job("refresh-utilization-gauge", 60, lambda: checkin_routes.refresh_utilization_gauge(app))
