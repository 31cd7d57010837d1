"""The platform as `make dev` runs it (gunicorn services behind the real NGINX), on fresh databases and free ports."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import requests

from devstack.components import available_services
from devstack.stack import Ports, Stack

pytest_plugins = ["devstack.pytest_plugin", "servicekit.testing"]


@pytest.fixture(scope="session")
def platform(infrastructure, fresh_database, tmp_path_factory):
    specs = available_services()
    saved = dict(os.environ)
    for spec in specs:
        os.environ[f"DATABASE_URL_{spec.database.upper()}"] = fresh_database(f"e2e_{spec.database}")
    os.environ.update(
        KAFKA_BOOTSTRAP_SERVERS=infrastructure.bootstrap,
        ADMIN_EMAIL="root@example.com",
        ADMIN_PASSWORD="root password",
        LOG_LEVEL="INFO",
        # Check-in closes at the start and the worker looks every second, so a no-show is released
        # while the test runs (test_checkin_gateway.py); no other test books a room with auto_release.
        CHECKIN_GRACE_MINUTES="0",
        AUTO_RELEASE_POLL_SECONDS="1",
        WAITLIST_POLL_SECONDS="1",
    )
    stack = Stack(state=Path(tmp_path_factory.mktemp("stack")), ports=Ports.random())
    try:
        stack.start_infrastructure([spec.database for spec in specs])
        stack.start_services(specs)
        stack.start_gateway()
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


class Gateway:
    """A client of the gateway that honours 429 Retry-After, as a well-behaved client does."""

    def __init__(self, stack: Stack):
        self.base = f"http://127.0.0.1:{stack.ports.gateway}"
        self.session = requests.Session()

    def request(self, method: str, path: str, *, retry_429: bool = True, **kwargs) -> requests.Response:
        for _ in range(20):
            response = self.session.request(method, self.base + path, timeout=10, **kwargs)
            if response.status_code != 429 or not retry_429:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return response

    def login(self, email: str, password: str) -> dict:
        tokens = self.request("POST", "/api/auth/login", json={"email": email, "password": password})
        assert tokens.status_code == 200, tokens.text
        return {"Authorization": f"Bearer {tokens.json()['access_token']}"}

    def register_and_login(self) -> tuple[dict, dict]:
        email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
        user = self.request("POST", "/api/auth/register", json={"email": email, "password": "long enough", "full_name": "E2E"})
        assert user.status_code == 201, user.text
        tokens = self.request("POST", "/api/auth/login", json={"email": email, "password": "long enough"})
        assert tokens.status_code == 200, tokens.text
        return user.json(), {"Authorization": f"Bearer {tokens.json()['access_token']}"}


@pytest.fixture
def gateway(platform) -> Gateway:
    return Gateway(platform)
