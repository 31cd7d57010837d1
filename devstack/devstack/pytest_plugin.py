"""Fixtures that give tests the real PostgreSQL, broker and SMTP sink.

Under `make test` the parts are already running (their addresses come in the
environment); a developer running `pytest` directly gets them started here.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .components import SERVICES, Service, drop_database, ensure_database
from .processes import free_port
from .stack import Ports, Stack, generate_signing_key

ADMIN = ("admin@example.com", "admin password")


@dataclass
class Infrastructure:
    postgres_admin_url: str
    bootstrap: str
    smtp_port: int
    mail_dir: Path

    def database_url(self, name: str) -> str:
        return self.postgres_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


@pytest.fixture(scope="session")
def infrastructure():
    if os.environ.get("TEST_POSTGRES_ADMIN_URL"):
        yield Infrastructure(
            os.environ["TEST_POSTGRES_ADMIN_URL"],
            os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            int(os.environ["TEST_SMTP_PORT"]),
            Path(os.environ["TEST_MAIL_DIR"]),
        )
        return
    state = Path(tempfile.mkdtemp(prefix="devstack-pytest-"))
    stack = Stack(state=state, ports=Ports.random(), fast=True)
    try:
        stack.start_infrastructure([])
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = stack.bootstrap
        yield Infrastructure(stack.postgres.url("postgres", "postgresql"), stack.bootstrap, stack.ports.smtp, state / "mail")
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "signing.pem"
    generate_signing_key(path)
    return path


@pytest.fixture(scope="session")
def fresh_database(infrastructure):
    """A factory of new, empty databases, dropped at the end of the session."""
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        ensure_database(infrastructure.postgres_admin_url, name)
        created.append(name)
        return infrastructure.database_url(name)

    yield make
    for name in created:
        drop_database(infrastructure.postgres_admin_url, name)


def start_service(name: str, log_dir: Path, **env: str) -> tuple[str, Service]:
    """Run one of our services for real (migrated, under gunicorn) on a free port; returns (base URL, handle)."""
    spec = next(s for s in SERVICES if s.name == name)
    port = free_port()
    service = Service(spec, port, {**os.environ, "PORT": str(port), "LOG_LEVEL": "WARNING", **env}, log_dir)
    service.migrate()
    service.start()
    return f"http://127.0.0.1:{port}", service


@pytest.fixture(scope="session")
def user_service(infrastructure, fresh_database, signing_key_file, tmp_path_factory):
    """The real user-service, as `make dev` runs it, for suites that need tokens and a JWKS."""
    url, service = start_service(
        "user-service",
        Path(tmp_path_factory.mktemp("peer-logs")),
        DATABASE_URL=fresh_database("peer_users"),
        KAFKA_BOOTSTRAP_SERVERS=infrastructure.bootstrap,
        JWT_PRIVATE_KEY_FILE=str(signing_key_file),
        ADMIN_EMAIL=ADMIN[0],
        ADMIN_PASSWORD=ADMIN[1],
    )
    yield url
    service.stop()


class People:
    """Users registered and logged in through the real user-service."""

    def __init__(self, user_service: str):
        self.url = user_service

    def login(self, email: str, password: str) -> dict:
        response = requests.post(f"{self.url}/api/auth/login", json={"email": email, "password": password}, timeout=10)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def user(self) -> tuple[dict, dict]:
        email = f"person-{uuid.uuid4().hex[:10]}@example.com"
        response = requests.post(
            f"{self.url}/api/auth/register", json={"email": email, "password": "long enough", "full_name": "Person"}, timeout=10
        )
        assert response.status_code == 201, response.text
        return response.json(), self.login(email, "long enough")

    def admin(self) -> tuple[dict, dict]:
        headers = self.login(*ADMIN)
        return requests.get(f"{self.url}/api/users/me", headers=headers, timeout=10).json(), headers

    def deactivate(self, user_id: int) -> None:
        response = requests.put(f"{self.url}/api/users/{user_id}", json={"is_active": False}, headers=self.admin()[1], timeout=10)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def people(user_service) -> People:
    return People(user_service)
