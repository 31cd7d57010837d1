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

import psycopg
import pytest

pytest.register_assert_rewrite("servicekit.testing")  # the plugin below, imported here first

from app import create_app  # noqa: E402
from config import ReservationServiceConfig  # noqa: E402
from devstack.processes import free_port  # noqa: E402
from servicekit.db import db  # noqa: E402
from servicekit.events import make_envelope  # noqa: E402
from servicekit.testing import libpq_url, send_blocked_by, service_env, service_fixtures, wait_until  # noqa: E402

pytest_plugins = ["devstack.pytest_plugin", "servicekit.testing"]

TABLES = (
    "reservations, reservation_series, blackouts, idempotency_keys, notified_reservations, outgoing_emails, "
    "calendar_tokens, waitlist_entries"  # the mail consumer's lock order
)


@pytest.fixture(scope="session")
def config(infrastructure, fresh_database, user_service):
    env = service_env(
        infrastructure,
        fresh_database("reservations"),
        JWKS_URL=f"{user_service}/api/auth/jwks",
        USER_SERVICE_URL=user_service,
        # Room look-ups are answered from room-events; this address has nobody behind it.
        ROOM_SERVICE_URL=f"http://127.0.0.1:{free_port()}",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(infrastructure.smtp_port),
        # The waitlist pass runs every second, so a freed slot is booked within the tests' patience.
        WAITLIST_POLL_SECONDS="1",
    )
    return ReservationServiceConfig.from_env(env)


app, client, _clean_tables = service_fixtures(create_app, TABLES)


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


def against_a_rival_booking(config, rival: tuple, send, message: str, timeout: float = 20.0) -> tuple[int, object]:
    """A race lost at the database: another transaction inserts the booking `rival` (room_id, user_id, start,
    end) and keeps it uncommitted, so the request `send` makes passes the friendly overlap check; once that
    request waits on the rival's row (held by the exclusion constraint, however slow the machine), the rival
    commits. The rival's id and the request's answer."""
    with psycopg.connect(libpq_url(config.database_url)) as transaction:
        rival_id = transaction.execute(
            "INSERT INTO reservations (room_id, user_id, title, start_time, end_time) VALUES (%s, %s, 'Rival', %s, %s) RETURNING id",
            rival,
        ).fetchone()[0]
        request = send_blocked_by(config.database_url, transaction, send, message)
        transaction.commit()
    return rival_id, request.response(timeout)


@pytest.fixture
def two_bookers(client, people, rooms):
    """Alice and Bob (users), a room, and Alice's booking in it, with attendees and a description."""
    alice, alice_headers = people.user()
    bob, bob_headers = people.user()
    room = rooms.create()
    mine = client.post(
        "/api/reservations",
        json=booking(room["id"], 0, attendees=["x@example.com"], description="secret agenda"),
        headers=alice_headers,
    )
    assert mine.status_code == 201, mine.get_json()
    return {
        "alice": alice_headers,
        "bob": bob_headers,
        "bob_user": bob,
        "alice_user": alice,
        "room": room,
        "reservation": mine.get_json(),
    }


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
