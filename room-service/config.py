"""room-service settings, from environment variables only."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import BaseConfig, env_field, parse_positive_int


@dataclass(frozen=True)
class RoomServiceConfig(BaseConfig):
    service_name: str = "room-service"
    port: int = env_field("PORT", 5002, parse_positive_int, doc="HTTP port")
    jwks_url: str = env_field("JWKS_URL", required=True, doc="user-service's JWKS document")
