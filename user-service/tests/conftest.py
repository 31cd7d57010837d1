"""Fixtures for user-service: the app on a fresh real database, clients, users and tokens."""

from __future__ import annotations

import uuid

import pytest

pytest.register_assert_rewrite("servicekit.testing")  # the plugin below, imported here first

from app import create_app, services  # noqa: E402
from config import UserServiceConfig  # noqa: E402
from servicekit.testing import service_env, service_fixtures  # noqa: E402

pytest_plugins = ["devstack.pytest_plugin", "servicekit.testing"]

TABLES = "users, refresh_tokens, auth_throttles, booking_records, outbox_events, processed_events, parked_events, revoked_users"


@pytest.fixture(scope="session")
def config(fresh_database, infrastructure, signing_key_file):
    env = service_env(infrastructure, fresh_database("users"), JWT_PRIVATE_KEY_FILE=str(signing_key_file), LOGIN_MAX_FAILURES="5")
    return UserServiceConfig.from_env(env)


app, client, _clean_tables = service_fixtures(create_app, TABLES, background=False)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


class Accounts:
    """Registers users and logs them in through the API."""

    def __init__(self, client, app):
        self.client = client
        self.app = app

    def register(self, email: str | None = None, password: str = "correct horse", full_name: str = "Ada Lovelace") -> dict:
        response = self.client.post(
            "/api/auth/register", json={"email": email or unique_email(), "password": password, "full_name": full_name}
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def login(self, email: str, password: str = "correct horse") -> dict:
        response = self.client.post("/api/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def user_with_token(self, **kwargs) -> tuple[dict, dict]:
        user = self.register(**kwargs)
        tokens = self.login(user["email"], kwargs.get("password", "correct horse"))
        return user, {"Authorization": f"Bearer {tokens['access_token']}"}

    def admin_with_token(self) -> tuple[dict, dict]:
        email = unique_email("admin")
        with self.app.app_context():
            admin = services.ensure_admin(email, "admin password").to_dict()
        tokens = self.login(email, "admin password")
        return admin, {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def accounts(client, app):
    return Accounts(client, app)
