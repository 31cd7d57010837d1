"""room-service settings, from environment variables only."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import BaseConfig, env_field, parse_http_url, parse_positive_int


def parse_time_zone(raw: str) -> str:
    from app.schemas import known_zone  # here, not at the top: app imports this module

    return known_zone(raw.strip())


@dataclass(frozen=True)
class RoomServiceConfig(BaseConfig):
    service_name: str = "room-service"
    port: int = env_field("PORT", 5002, parse_positive_int, doc="HTTP port")
    jwks_url: str = env_field("JWKS_URL", parse=parse_http_url, required=True, doc="user-service's JWKS document")
    default_timezone: str = env_field(
        "DEFAULT_TIMEZONE", "UTC", parse_time_zone, doc="IANA time zone of rooms created without one"
    )
