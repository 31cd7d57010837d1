"""Fixtures for room-service: the app on a fresh real database with its consumer running, and
tokens from the real user-service (whose JWKS the app fetches)."""

from __future__ import annotations

import uuid

import pytest

from app import create_app
from config import RoomServiceConfig

pytest_plugins = ["devstack.pytest_plugin", "servicekit.testing"]

TABLES = "room_equipment, rooms, equipment, outbox_events"


@pytest.fixture(scope="session")
def config(infrastructure, fresh_database, user_service):
    return RoomServiceConfig.from_env(
        {
            "DATABASE_URL": fresh_database("rooms"),
            "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap,
            "JWKS_URL": f"{user_service}/api/auth/jwks",
            "LOG_LEVEL": "WARNING",
        }
    )


@pytest.fixture(scope="session")
def app(config):
    from servicekit.testing import running_app  # the plugin module, imported once pytest has loaded it

    yield from running_app(create_app, config)


@pytest.fixture(autouse=True)
def _clean_tables(app):
    yield
    from servicekit.testing import truncate_tables

    truncate_tables(app, TABLES)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def admin(people) -> dict:
    return people.admin()[1]


@pytest.fixture(scope="session")
def user(people) -> dict:
    return people.user()[1]


def room_body(**overrides) -> dict:
    body = {
        "name": f"Room {uuid.uuid4().hex[:8]}",
        "capacity": 8,
        "location": "Floor 3, East",
        "equipment": ["Projector", "whiteboard"],
        "description": "Bright",
    }
    body.update(overrides)
    return body


@pytest.fixture
def make_room(client, admin):
    def make(**overrides) -> dict:
        response = client.post("/api/rooms", json=room_body(**overrides), headers=admin)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return make
