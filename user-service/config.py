"""user-service settings, from environment variables only."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import BaseConfig, env_field, parse_csv, parse_positive_int, placeholder_secret


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
        "LOGIN_MAX_FAILURES",
        5,
        parse_positive_int,
        doc="failed password checks of one account from one client before growing delays start",
    )
    login_lockout_seconds: int = env_field(
        "LOGIN_LOCKOUT_SECONDS", 900, parse_positive_int, doc="longest delay imposed on that client for that account"
    )
    password_hash_concurrency: int = env_field(
        "PASSWORD_HASH_CONCURRENCY", 2, parse_positive_int, doc="argon2 hashes run at once per process (19 MiB each)"
    )
    password_hash_wait_seconds: int = env_field(
        "PASSWORD_HASH_WAIT_SECONDS", 3, parse_positive_int, doc="wait for a hashing slot before answering 503"
    )
    admin_email: str = env_field("ADMIN_EMAIL", "", doc="the first admin, ensured at start-up (with ADMIN_PASSWORD)")
    admin_password: str = env_field("ADMIN_PASSWORD", "", doc="the first admin's password")

    def consistency_problems(self) -> list[str]:
        problems = super().consistency_problems()
        if placeholder_secret(self.admin_password) and self.environment != "development":
            problems.append(
                "ADMIN_PASSWORD is a placeholder (change-me); set a real one (allowed only with ENVIRONMENT=development)"
            )
        return problems
