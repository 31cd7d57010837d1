"""user-service: accounts, login, JWT and roles."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy import bindparam, select

from config import UserServiceConfig
from servicekit.app import create_service_app
from servicekit.auth import Principal, TokenVerifier, init_auth
from servicekit.db import db
from servicekit.openapi import build_spec

from . import kafka_consumer, routes, services
from .models import User
from .schemas import SCHEMAS
from .tokens import KeyRing


def create_app(config: UserServiceConfig | None = None) -> Flask:
    config = config or UserServiceConfig.from_env()
    keys = KeyRing.from_config(config)
    spec = build_spec("user-service", "Accounts, login, JWT access tokens (JWKS) and roles.", SCHEMAS)
    app = create_service_app(__name__, config, openapi=spec, topics=(services.TOPIC, *kafka_consumer.OWNERS))
    app.extensions["user-service.tokens"] = services.TokenSettings(
        keys=keys,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        access_ttl=config.access_token_ttl,
        refresh_ttl=config.refresh_token_ttl,
        max_failures=config.login_max_failures,
        lockout_seconds=config.login_lockout_seconds,
    )
    verifier = TokenVerifier(keys, issuer=config.jwt_issuer, audience=config.jwt_audience, algorithms=config.jwt_algorithms)
    init_auth(app, verifier, is_revoked=_is_revoked)
    services.hasher.configure(config.password_hash_concurrency, config.password_hash_wait_seconds)
    app.register_blueprint(routes.auth)
    app.register_blueprint(routes.users)
    app.extensions["servicekit.background"].add_worker(kafka_consumer.make_consumer)
    app.extensions["servicekit.background"].add_job("purge-old-throttles", 3600, services.purge_old_throttles)
    app.extensions["servicekit.background"].add_job("purge-expired-refresh-tokens", 600, services.purge_expired_refresh_tokens)
    return app


# The caller's public columns and token cut-off by primary key, as a plain row (no ORM object: a third of the
# cost of `/me`).
_CALLER = select(*(User.__table__.c[name] for name in User.PUBLIC), User.__table__.c.sessions_revoked_at).where(
    User.__table__.c.id == bindparam("id")
)


def _is_revoked(principal: Principal) -> bool:
    """user-service knows first-hand: a deactivated (or deleted) user's tokens stop at once, and so does a
    token whose role is no longer the user's role (a demoted admin is not an admin here any more), or one
    issued before the user's last deactivation or role change (still dead after a reactivation, or after the
    role was changed back)."""
    # Kept on `g` for the request: its own read of the caller (`/me`) uses it, no second query.
    user = g.caller_row = db.session.execute(_CALLER, {"id": principal.user_id}).first()
    if user is None or not user.is_active or user.role != principal.role:
        return True
    return user.sessions_revoked_at is not None and principal.issued_at < user.sessions_revoked_at.timestamp()
