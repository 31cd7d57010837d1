"""Brings the parts up in order, and down in reverse."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .components import (
    REPO,
    SERVICES,
    Broker,
    Gateway,
    Postgres,
    Service,
    ServiceSpec,
    SmtpSink,
    available_services,
)
from .processes import free_port

STATE = REPO / ".devstack"


def generate_signing_key(path: Path) -> None:
    """An Ed25519 private key for signing access tokens (development only)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def admin_credentials(state: Path) -> tuple[str, str, bool]:
    """ADMIN_EMAIL/ADMIN_PASSWORD if set, else credentials generated once and kept in the state folder."""
    if os.environ.get("ADMIN_EMAIL") and os.environ.get("ADMIN_PASSWORD"):
        return os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"], False
    path = state / "admin.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["email"], saved["password"], True
    email, password = "admin@example.com", secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"email": email, "password": password}))
    path.chmod(0o600)
    return email, password, True


@dataclass
class Ports:
    postgres: int = 5432
    broker: int = 9092
    smtp: int = 1025
    gateway: int = 8080
    services: dict[str, int] = field(default_factory=lambda: {spec.name: spec.port for spec in SERVICES})

    @classmethod
    def random(cls) -> Ports:
        return cls(
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            {spec.name: free_port() for spec in SERVICES},
        )


class Stack:
    """The whole platform, or the infrastructure part of it, started from `state`."""

    def __init__(
        self,
        state: Path = STATE,
        ports: Ports | None = None,
        *,
        fast: bool = False,
        auth_rate: str = "5r/s",
        write_rate: str = "10r/s",
    ):
        self.state = state
        self.ports = ports or Ports()
        self.fast = fast
        self.auth_rate = auth_rate
        self.write_rate = write_rate
        self.started: list = []
        self.postgres: Postgres | None = None
        self.database_urls: dict[str, str] = {}
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        self.services: dict[str, Service] = {}
        self.admin: tuple[str, str, bool] | None = None
        self.broker: Broker | None = None

    def libpq_url(self, database: str) -> str:
        """`database`'s URL as libpq takes it (psql, psycopg.connect); `database_urls` are SQLAlchemy's."""
        return self.database_urls[database].replace("postgresql+psycopg://", "postgresql://", 1)

    def fresh_broker(self) -> None:
        """Replace our broker with an empty one on the same port (test suites do not see each other's events)."""
        if self.broker is None:
            return
        index = self.started.index(self.broker)
        self.broker.stop()
        self.broker = Broker(self.ports.broker, self.state / "logs")
        self.broker.start()
        self.started[index] = self.broker

    def _start(self, component) -> None:
        component.start()
        self.started.append(component)

    def start_infrastructure(self, databases: list[str]) -> None:
        """PostgreSQL (unless DATABASE_URL_<NAME> are all given), the broker (unless KAFKA_BOOTSTRAP_SERVERS), the SMTP sink."""
        given = {db: os.environ.get(f"DATABASE_URL_{db.upper()}") for db in databases}
        if databases and all(given.values()):
            self.database_urls = dict(given)  # type: ignore[arg-type]
        else:
            if self.fast:
                os.environ["DEVSTACK_FAST_PG"] = "1"
            self.postgres = Postgres(self.state / "pg", self.ports.postgres, self.state / "logs")
            self._start(self.postgres)
            for db in databases:
                self.postgres.ensure_database(db)
                self.database_urls[db] = self.postgres.url(db)
        if not self.bootstrap:
            self.broker = Broker(self.ports.broker, self.state / "logs")
            self._start(self.broker)
            self.bootstrap = self.broker.bootstrap
        self._start(SmtpSink(self.ports.smtp, self.state / "mail", self.state / "logs"))

    def service_env(self, spec: ServiceSpec) -> dict[str, str]:
        user_port = self.ports.services["user-service"]
        room_port = self.ports.services["room-service"]
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_urls[spec.database],
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            PORT=str(self.ports.services[spec.name]),
            JWKS_URL=f"http://127.0.0.1:{user_port}/api/auth/jwks",
            USER_SERVICE_URL=f"http://127.0.0.1:{user_port}",
            ROOM_SERVICE_URL=f"http://127.0.0.1:{room_port}",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.ports.smtp),
            JWT_PRIVATE_KEY_FILE=str(self.state / "keys" / "jwt-signing.pem"),
            PYTHONUNBUFFERED="1",
        )
        if self.admin:
            env.update(ADMIN_EMAIL=self.admin[0], ADMIN_PASSWORD=self.admin[1])
        env.update(spec.extra_env)
        env.pop("DATABASE_URL_" + spec.database.upper(), None)
        return env

    def start_services(self, specs: list[ServiceSpec] | None = None) -> None:
        specs = available_services() if specs is None else specs
        key = self.state / "keys" / "jwt-signing.pem"
        if not key.exists():
            generate_signing_key(key)
        self.admin = admin_credentials(self.state)
        for spec in specs:
            service = Service(spec, self.ports.services[spec.name], self.service_env(spec), self.state / "logs")
            service.migrate()
            self._start(service)
            self.services[spec.name] = service

    def start_gateway(self) -> Gateway:
        upstreams = {name: f"127.0.0.1:{port}" for name, port in self.ports.services.items()}
        gateway = Gateway(
            self.ports.gateway,
            upstreams,
            self.state / "nginx",
            self.state / "logs",
            auth_rate=self.auth_rate,
            write_rate=self.write_rate,
        )
        self._start(gateway)
        return gateway

    def stop(self) -> None:
        while self.started:
            component = self.started.pop()
            try:
                component.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"warning: stopping {component.__class__.__name__} failed: {exc}", file=sys.stderr)
