"""Fixtures for reservation-service: real peers (user-service under gunicorn), the app served over
real HTTP on a fresh database, its consumers and mail sender running, users and rooms."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from app import create_app
from config import ReservationServiceConfig
from devstack.processes import free_port
from servicekit.db import db
from servicekit.events import make_envelope

pytest_plugins = ["devstack.pytest_plugin", "servicekit.testing"]

TABLES = (
    "reservations, reservation_series, blackouts, idempotency_keys, notified_reservations, outgoing_emails, "
    "calendar_tokens, waitlist_entries"  # the mail consumer's lock order
)


@pytest.fixture(scope="session")
def config(infrastructure, fresh_database, user_service):
    return ReservationServiceConfig.from_env(
        {
            "DATABASE_URL": fresh_database("reservations"),
            "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap,
            "JWKS_URL": f"{user_service}/api/auth/jwks",
            "USER_SERVICE_URL": user_service,
            # Room look-ups are answered from room-events; this address has nobody behind it.
            "ROOM_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(infrastructure.smtp_port),
            "LOG_LEVEL": "WARNING",
            # The waitlist pass runs every second, so a freed slot is booked within the tests' patience.
            "WAITLIST_POLL_SECONDS": "1",
        }
    )


@pytest.fixture(scope="session")
def app(config):
    from servicekit.testing import running_app  # the plugin module, imported once pytest has loaded it

    yield from running_app(create_app, config)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # dozens of clients connect at once


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def base_url(app):
    """The app over real HTTP with a thread per request, for concurrency tests."""
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(autouse=True)
def _clean_tables(app):
    yield
    from servicekit.testing import truncate_tables

    truncate_tables(app, TABLES)


@pytest.fixture
def client(app):
    return app.test_client()


class Rooms:
    """Rooms as room-service announces them on `room-events`."""

    def __init__(self, topics, app):
        self.topics = topics
        self.app = app

    def publish(self, event_type: str, room: dict) -> None:
        envelope = make_envelope(event_type, room, "room-service")
        self.topics.produce("room-events", str(room["id"]), json.dumps(envelope).encode())

    def create(self, capacity: int = 10, is_active: bool = True, **fields) -> dict:
        """A room; `fields` adds or overrides what room-service would announce (timezone, booking_policy, name...)."""
        from app.models import RoomReplica
        from servicekit.testing import wait_until

        room_id = uuid.uuid4().int % 10**9 + 1
        now = datetime.now(UTC).isoformat()
        room = {
            "id": room_id,
            "name": f"Room {room_id}",
            "capacity": capacity,
            "location": "Floor 2",
            "equipment": ["projector"],
            "description": "",
            "is_active": is_active,
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        self.publish("room.created", room)

        def known():
            with self.app.app_context():
                return db.session.get(RoomReplica, room_id) is not None

        wait_until(known, message=f"room {room_id} to reach the read model")
        return room


@pytest.fixture
def rooms(topics, app) -> Rooms:
    return Rooms(topics, app)


def slot(hours_ahead: float, minutes: int = 60) -> tuple[str, str]:
    """An hour-aligned slot in the future, as RFC 3339 with a +01:00 offset."""
    base = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    start = (base + timedelta(hours=hours_ahead)).astimezone(datetime.fromisoformat("2000-01-01T00:00:00+01:00").tzinfo)
    return start.isoformat(), (start + timedelta(minutes=minutes)).isoformat()


def booking(room_id: int, hours_ahead: float = 0, minutes: int = 60, **extra) -> dict:
    start, end = slot(hours_ahead, minutes)
    return {"room_id": room_id, "title": "Planning", "start_time": start, "end_time": end, **extra}


@pytest.fixture(scope="session")
def room_service(fresh_database, user_service, tmp_path_factory):
    """The real room-service, publishing to a broker nobody reads: reservation-service can learn its rooms only over REST."""
    from devstack.pytest_plugin import start_service  # the plugin module, imported once pytest has loaded it

    url, service = start_service(
        "room-service",
        Path(tmp_path_factory.mktemp("room-peer-logs")),
        DATABASE_URL=fresh_database("peer_rooms"),
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        JWKS_URL=f"{user_service}/api/auth/jwks",
    )
    yield url
    service.stop()


@pytest.fixture(scope="session")
def rest_client(config, room_service):
    """reservation-service (same database, no consumers) whose room look-ups go to the real room-service."""
    from dataclasses import replace

    return create_app(replace(config, room_service_url=room_service)).test_client()
