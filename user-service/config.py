"""user-service settings, from environment variables only."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import BaseConfig, env_field, parse_csv, parse_positive_int


@dataclass(frozen=True)
class UserServiceConfig(BaseConfig):
    service_name: str = "user-service"
    port: int = env_field("PORT", 5001, parse_positive_int, doc="HTTP port")
    jwt_private_key_file: str = env_field(
        "JWT_PRIVATE_KEY_FILE", "", doc="PEM file of the key that signs access tokens (Ed25519 or RSA)"
    )
    jwt_private_key: str = env_field("JWT_PRIVATE_KEY", "", doc="the signing key's PEM itself, instead of a file")
    jwt_extra_key_files: tuple[str, ...] = env_field(
        "JWT_EXTRA_KEY_FILES", (), parse_csv, doc="comma-separated PEM files of older keys still published in the JWKS (rotation)"
    )
    access_token_ttl: int = env_field("ACCESS_TOKEN_TTL_SECONDS", 900, parse_positive_int, doc="access token lifetime")
    refresh_token_ttl: int = env_field(
        "REFRESH_TOKEN_TTL_SECONDS", 14 * 24 * 3600, parse_positive_int, doc="refresh token lifetime"
    )
    login_max_failures: int = env_field(
        "LOGIN_MAX_FAILURES", 5, parse_positive_int, doc="failed logins before an account is locked"
    )
    login_lockout_seconds: int = env_field(
        "LOGIN_LOCKOUT_SECONDS", 900, parse_positive_int, doc="how long a locked account stays locked"
    )
    admin_email: str = env_field("ADMIN_EMAIL", "", doc="the first admin, ensured at start-up (with ADMIN_PASSWORD)")
    admin_password: str = env_field("ADMIN_PASSWORD", "", doc="the first admin's password")
