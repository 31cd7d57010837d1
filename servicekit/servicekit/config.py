"""Configuration read only from environment variables, validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit


class ConfigError(RuntimeError):
    """One or more environment variables are missing or invalid."""


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class Env:
    """Describes one environment variable: how to parse it and its default."""

    name: str
    default: Any = None
    parse: Callable[[str], Any] = str
    required: bool = False
    doc: str = ""


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def parse_csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_http_url(raw: str) -> str:
    """An absolute http(s) URL with a host and nothing after its path (no query, fragment or user info), without
    its trailing slash; '' stays '' (unset). For the services' URL settings (peers, JWKS, the public address)."""
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as error:
        raise ValueError(f"not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise ValueError("must be an absolute http(s) URL such as https://rooms.example.com, without query or fragment")
    return raw.rstrip("/")


def placeholder_secret(value: str) -> bool:
    """A secret left at an example value such as `change-me-admin`."""
    lowered = value.lower()
    return "change-me" in lowered or "changeme" in lowered


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


ASYMMETRIC_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}


def parse_algorithms(raw: str) -> tuple[str, ...]:
    algorithms = parse_csv(raw)
    unsafe = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if unsafe or not algorithms:
        raise ValueError(f"only asymmetric algorithms are accepted, got {', '.join(unsafe) or 'none'}")
    return algorithms


def env_field(name: str, default: Any = None, parse: Callable[[str], Any] = str, *, required: bool = False, doc: str = ""):
    """A dataclass field whose value comes from the environment variable `name`."""
    return field(default=default, metadata={"env": Env(name, default, parse, required, doc)})


@dataclass(frozen=True)
class BaseConfig:
    """Settings every service reads. Services subclass it to add their own."""

    service_name: str = "service"
    database_url: str = env_field("DATABASE_URL", required=True, doc="SQLAlchemy URL of the service's PostgreSQL database")
    kafka_bootstrap_servers: str = env_field("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", doc="Kafka bootstrap servers")
    port: int = env_field("PORT", 5000, parse_positive_int, doc="HTTP port of the service")
    log_level: str = env_field("LOG_LEVEL", "INFO", str.upper, doc="DEBUG, INFO, WARNING or ERROR")
    jwt_issuer: str = env_field("JWT_ISSUER", "meeting-rooms", doc="`iss` of access tokens")
    jwt_audience: str = env_field("JWT_AUDIENCE", "meeting-rooms-api", doc="`aud` of access tokens")
    jwt_algorithms: tuple[str, ...] = env_field(
        "JWT_ALGORITHMS", ("EdDSA",), parse_algorithms, doc="accepted token algorithms (asymmetric only)"
    )
    jwks_url: str = env_field("JWKS_URL", "", parse_http_url, doc="URL of user-service's JWKS document")
    background_workers: bool = env_field(
        "BACKGROUND_WORKERS",
        False,
        parse_bool,
        doc="also run the background work (relay, consumers, mail, jobs) in each request process; "
        "normally it runs in `run.py worker`",
    )
    trusted_proxies: int = env_field(
        "TRUSTED_PROXY_HOPS", 1, int, doc="number of proxies (the gateway) in front, for client addresses"
    )
    database_app_role: str = env_field(
        "DATABASE_APP_ROLE",
        "",
        doc="`run.py migrate` (run as the owner) creates this role and grants it read/write on the tables only",
    )
    database_app_password: str = env_field("DATABASE_APP_PASSWORD", "", doc="password it sets for DATABASE_APP_ROLE")
    environment: str = env_field(
        "ENVIRONMENT",
        "production",
        parse_choice("production", "staging", "development"),
        doc="production, staging or development (placeholder secrets are refused outside development)",
    )
    kafka_security_protocol: str = env_field(
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        parse_choice(*KAFKA_SECURITY_PROTOCOLS),
        doc="PLAINTEXT, SSL (mTLS with a client certificate), SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: str = env_field(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", parse_choice(*KAFKA_SASL_MECHANISMS), doc="SASL mechanism"
    )
    kafka_sasl_username: str = env_field("KAFKA_SASL_USERNAME", "", doc="SASL user of this service")
    kafka_sasl_password: str = env_field("KAFKA_SASL_PASSWORD", "", doc="its SASL password")
    kafka_ssl_ca_location: str = env_field("KAFKA_SSL_CA_LOCATION", "", doc="CA bundle that signs the broker's certificate")
    kafka_ssl_certificate_location: str = env_field("KAFKA_SSL_CERTIFICATE_LOCATION", "", doc="client certificate (PEM) for mTLS")
    kafka_ssl_key_location: str = env_field("KAFKA_SSL_KEY_LOCATION", "", doc="client key (PEM) for mTLS")
    db_connect_timeout: int = env_field(
        "DB_CONNECT_TIMEOUT_SECONDS", 2, parse_positive_int, doc="give up connecting to PostgreSQL after this long"
    )
    db_statement_timeout_ms: int = env_field(
        "DB_STATEMENT_TIMEOUT_MS", 5000, parse_positive_int, doc="PostgreSQL statement_timeout of the service's sessions"
    )
    processed_events_retention_hours: int = env_field(
        "PROCESSED_EVENTS_RETENTION_HOURS",
        336,
        parse_positive_int,
        doc="how long a consumed event's id is remembered against redelivery; longer than the broker keeps the topics",
    )
    db_pool_timeout: int = env_field(
        "DB_POOL_TIMEOUT_SECONDS", 3, parse_positive_int, doc="wait at most this long for a free pooled connection"
    )
    request_deadline_seconds: int = env_field(
        "REQUEST_DEADLINE_SECONDS",
        14,
        parse_non_negative_int,
        doc="refuse (503, nothing changed) a request, or its commit, this long after the gateway's X-Request-Start:"
        " the gateway (15 s timeout) has given up on it; 0 = off",
    )

    def kafka_security(self) -> dict:
        """librdkafka settings authenticating this service to the broker: SASL/SCRAM (e.g. MSK's `SASL_SSL` +
        `SCRAM-SHA-512` on port 9096) or mutual TLS (`SSL` with a client certificate)."""
        protocol = self.kafka_security_protocol
        settings: dict = {"security.protocol": protocol}
        if protocol.startswith("SASL_"):
            settings["sasl.mechanism"] = self.kafka_sasl_mechanism
            settings["sasl.username"], settings["sasl.password"] = self.kafka_sasl_username, self.kafka_sasl_password
        if protocol.endswith("SSL"):
            files = {
                "ssl.ca.location": self.kafka_ssl_ca_location,
                "ssl.certificate.location": self.kafka_ssl_certificate_location,
                "ssl.key.location": self.kafka_ssl_key_location,
            }
            settings.update({name: path for name, path in files.items() if path})
        return settings

    def consistency_problems(self) -> list[str]:
        """Problems that involve several variables at once (subclasses may add theirs)."""
        problems = []
        if self.environment != "development":
            for name, value in (
                ("DATABASE_URL", self.database_url),
                ("DATABASE_APP_PASSWORD", self.database_app_password),
                ("KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
            ):
                if placeholder_secret(value):
                    problems.append(f"{name} holds a placeholder password (change-me); set a real one")
        if bool(self.database_app_role) != bool(self.database_app_password):
            problems.append("DATABASE_APP_ROLE and DATABASE_APP_PASSWORD go together")
        if self.kafka_security_protocol.startswith("SASL_") and not (self.kafka_sasl_username and self.kafka_sasl_password):
            problems.append(
                f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
            )
        if bool(self.kafka_ssl_certificate_location) != bool(self.kafka_ssl_key_location):
            problems.append("KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION go together (mTLS)")
        if (self.kafka_ssl_certificate_location or self.kafka_ssl_ca_location) and not self.kafka_security_protocol.endswith(
            "SSL"
        ):
            problems.append("KAFKA_SSL_* settings need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
        return problems

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any):
        """Build the config from `environ` (default: os.environ); every problem is reported at once."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            spec: Env | None = f.metadata.get("env")
            if spec is None:
                continue
            raw = environ.get(spec.name)
            if raw is None or raw == "":
                if spec.required:
                    problems.append(f"{spec.name} is required ({spec.doc})")
                continue
            try:
                values[f.name] = spec.parse(raw)
            except ValueError as exc:
                problems.append(f"{spec.name}={raw!r} is invalid: {exc}")
        if problems:
            raise ConfigError("; ".join(problems))
        config = cls(**values)
        problems = config.consistency_problems()
        if problems:
            raise ConfigError("; ".join(problems))
        return config

    @classmethod
    def documented_variables(cls) -> list[Env]:
        """Every environment variable the config reads (tests/e2e/test_settings_documented.py checks the README lists them)."""
        return [f.metadata["env"] for f in fields(cls) if "env" in f.metadata]
