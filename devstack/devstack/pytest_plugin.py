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

from .components import drop_database, ensure_database
from .stack import Ports, Stack


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
