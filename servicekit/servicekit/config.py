"""Configuration read only from environment variables, validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class ConfigError(RuntimeError):
    """One or more environment variables are missing or invalid."""


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
    jwks_url: str = env_field("JWKS_URL", "", doc="URL of user-service's JWKS document")
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
        return cls(**values)

    @classmethod
    def documented_variables(cls) -> list[Env]:
        """Every environment variable the config reads (tests/e2e/test_settings_documented.py checks the README lists them)."""
        return [f.metadata["env"] for f in fields(cls) if "env" in f.metadata]
