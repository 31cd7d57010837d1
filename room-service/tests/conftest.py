"""Fixtures for room-service: the app on a fresh real database with its consumer running, and
tokens from the real user-service (whose JWKS the app fetches)."""

from __future__ import annotations

import uuid

import pytest

pytest.register_assert_rewrite("servicekit.testing")  # the plugin below, imported here first

from app import create_app  # noqa: E402
from config import RoomServiceConfig  # noqa: E402
from servicekit.testing import service_env, service_fixtures  # noqa: E402

pytest_plugins = ["devstack.pytest_plugin", "servicekit.testing"]

TABLES = "room_equipment, rooms, equipment, outbox_events"


@pytest.fixture(scope="session")
def config(infrastructure, fresh_database, user_service):
    return RoomServiceConfig.from_env(
        service_env(infrastructure, fresh_database("rooms"), JWKS_URL=f"{user_service}/api/auth/jwks")
    )


app, client, _clean_tables = service_fixtures(create_app, TABLES)


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
