"""Access-token verification (asymmetric JWTs, keys from a JWKS) and authorisation helpers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from flask import Flask, current_app, g, request
from sqlalchemy import select

from .db import RevokedUser, db
from .problems import Forbidden, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

ROLES = ("user", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified access token."""

    user_id: int
    role: str
    token_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class KeySource(Protocol):
    def signing_key_for(self, token: str) -> Any: ...


class JwksKeySource:
    """Public keys from a JWKS URL: fetched, cached, refetched when a token names an unknown `kid`."""

    def __init__(self, url: str, *, cache_seconds: int = 300, timeout: float = 3.0):
        self.client = jwt.PyJWKClient(url, cache_keys=True, lifespan=cache_seconds, timeout=timeout)

    def signing_key_for(self, token: str) -> Any:
        try:
            return self.client.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("JWKS unreachable: %s", exc)
            raise ServiceUnavailable("Tokens cannot be verified right now: the key service is unreachable.") from None
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise Unauthorized(f"The access token is invalid: {exc}") from None


class TokenVerifier:
    def __init__(self, keys: KeySource, *, issuer: str, audience: str, algorithms: tuple[str, ...], leeway: int = 10):
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.algorithms = list(algorithms)
        self.leeway = leeway

    def verify(self, token: str) -> Principal:
        """Verify signature, algorithm, `exp`, `iss` and `aud`; return the caller."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthorized("The access token is malformed.") from None
        if header.get("alg") not in self.algorithms:
            raise Unauthorized("The access token's algorithm is not accepted.")
        key = self.keys.signing_key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The access token is invalid: {exc}") from None
        if claims.get("typ") != "access" or claims.get("role") not in ROLES:
            raise Unauthorized("The token is not an access token.")
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise Unauthorized("The access token's subject is invalid.") from None
        return Principal(user_id=user_id, role=claims["role"], token_id=claims["jti"])


def is_revoked_from_events(user_id: int) -> bool:
    """Default revocation check: the user was deactivated according to `user-events`."""
    return db.session.execute(select(RevokedUser.user_id).where(RevokedUser.user_id == str(user_id))).first() is not None


def init_auth(app: Flask, verifier: TokenVerifier, is_revoked: Callable[[int], bool] = is_revoked_from_events) -> None:
    app.extensions["servicekit.auth"] = (verifier, is_revoked)


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer access token is required.")
    return token.strip()


def authenticate() -> Principal:
    """The verified caller of this request (cached on `g`)."""
    if "principal" not in g:
        verifier, is_revoked = current_app.extensions["servicekit.auth"]
        principal = verifier.verify(bearer_token())
        if is_revoked(principal.user_id):
            raise Unauthorized("This account is deactivated.")
        g.principal = principal
    return g.principal


def require_auth(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        authenticate()
        return view(*args, **kwargs)

    return wrapper


def require_admin(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not authenticate().is_admin:
            raise Forbidden("This operation is for administrators.")
        return view(*args, **kwargs)

    return wrapper


def current_principal() -> Principal:
    return authenticate()


def ensure_self_or_admin(owner_id: int) -> Principal:
    """Allow the owner of an object or an admin; anyone else gets 403."""
    principal = authenticate()
    if principal.user_id != owner_id and not principal.is_admin:
        raise Forbidden("You may only access your own resources.")
    return principal


def revocation_handlers() -> dict[str, Callable[[dict], None]]:
    """`user-events` handlers that keep `revoked_users` current; merge them into a service's consumer."""

    def on_deactivated(envelope: dict) -> None:
        user_id = str(envelope["data"]["id"])
        db.session.merge(RevokedUser(user_id=user_id))

    def on_updated(envelope: dict) -> None:
        data = envelope["data"]
        if data.get("is_active") is False:
            on_deactivated(envelope)
        else:
            db.session.execute(RevokedUser.__table__.delete().where(RevokedUser.user_id == str(data["id"])))

    return {"user.deactivated": on_deactivated, "user.updated": on_updated}
