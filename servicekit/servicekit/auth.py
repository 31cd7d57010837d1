"""Access-token verification (asymmetric JWTs, keys from a JWKS) and authorisation helpers."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import jwt
from flask import Flask, current_app, g, request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from .db import DEACTIVATED, RevokedUser, db
from .problems import Forbidden, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

ROLES = ("user", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified access token."""

    user_id: int
    role: str
    token_id: str
    issued_at: float = 0.0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_act_for(self, owner_id: int) -> bool:
        """The owner of an object, or an admin: who may read or change it."""
        return self.user_id == owner_id or self.is_admin


class KeySource(Protocol):
    def signing_key_for(self, token: str) -> Any: ...


class JwksKeySource:
    """Public keys from a JWKS URL: fetched, cached, refetched when a token names an unknown `kid`."""

    def __init__(self, url: str, *, cache_seconds: int = 300, timeout: float = 3.0):
        self.cache_seconds = cache_seconds  # also how long TokenVerifier trusts a token it verified with these keys
        # Only the JWK *set* is cached, for `cache_seconds`: PyJWT's per-key cache (cache_keys=True) is an
        # LRU without expiry, so a key removed from the JWKS would stay trusted until a restart.
        self.client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=True, lifespan=cache_seconds, timeout=timeout)

    def signing_key_for(self, token: str) -> Any:
        try:
            return self.client.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("JWKS unreachable: %s", exc)
            raise ServiceUnavailable("Tokens cannot be verified right now: the key service is unreachable.") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The access token is invalid: {exc}") from None


class VerifiedTokens:
    """Tokens verified lately (a bounded LRU keyed by the token string), so a client's next requests
    with the same token skip the signature check and the claims checks.

    An entry is trusted until the token expires (`exp` plus the verifier's leeway, as PyJWT decides
    expiry) and at most `max_age` seconds after it was verified (the key source's cache period, so
    a key removed from the JWKS stops verifying its tokens just as soon as without this cache).
    Only tokens that passed every check are kept; revocation is not cached: it is checked per
    request by the caller. Thread-safe."""

    def __init__(self, max_entries: int = 10_000, max_age: float | None = None):
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            principal, trusted_until = entry
            if time.time() >= trusted_until:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return principal

    def put(self, token: str, principal: Principal, expires_at: float) -> None:
        now = time.time()
        trusted_until = expires_at if self.max_age is None else min(expires_at, now + self.max_age)
        if trusted_until <= now or self.max_entries <= 0:
            return
        with self._lock:
            self._entries[token] = (principal, trusted_until)
            self._entries.move_to_end(token)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: tuple[str, ...],
        leeway: int = 10,
        cache_size: int = 10_000,
    ):
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.algorithms = list(algorithms)
        self.leeway = leeway
        # A key source that refetches its keys (JWKS) bounds how long a verified token is trusted;
        # one that holds its keys for the process's life (user-service's own) leaves `exp` alone.
        self.verified = VerifiedTokens(cache_size, getattr(keys, "cache_seconds", None))

    def verify(self, token: str) -> Principal:
        """Verify signature, algorithm, `exp`, `iss` and `aud`; return the caller. A token verified
        lately is answered from `self.verified` (see VerifiedTokens); revocation is the caller's check."""
        principal = self.verified.get(token)
        if principal is None:
            principal, expires_at = self._verify(token)
            self.verified.put(token, principal, expires_at + self.leeway)  # PyJWT refuses it from then on
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        header = unverified_header(token)
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
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The access token is invalid: {exc}") from None
        if claims.get("typ") != "access" or claims.get("role") not in ROLES:
            raise Unauthorized("The token is not an access token.")
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise Unauthorized("The access token's subject is invalid.") from None
        if not isinstance(claims["jti"], str) or isinstance(claims["iat"], bool):
            raise Unauthorized("The access token is malformed.")
        principal = Principal(user_id=user_id, role=claims["role"], token_id=claims["jti"], issued_at=float(claims["iat"]))
        return principal, int(claims["exp"])  # PyJWT's expiry: int(exp) <= now - leeway


def unverified_header(token: str) -> dict[str, Any]:
    """The token's JOSE header, or 401 for anything malformed (bad base64 or JSON, a non-string `kid`,
    a `crit` naming an extension we do not implement, ...)."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized("The access token is malformed.") from None
    if "crit" in header:
        raise Unauthorized("The access token names critical header extensions this service does not implement.")
    if not isinstance(header.get("kid", ""), str) or not isinstance(header.get("alg"), str):
        raise Unauthorized("The access token is malformed.")
    return header


class RevocationList:
    """Per-user token cut-offs from the `revoked_users` table, held in memory.

    The table is re-read at most every `refresh_seconds` (not once per request), so a
    revocation learnt from `user-events` applies within seconds. If the database cannot
    be read, the last list is used for up to `stale_seconds`; after that requests get 503.
    """

    def __init__(self, refresh_seconds: float = 1.0, stale_seconds: float = 30.0):
        self.refresh_seconds = refresh_seconds
        self.stale_seconds = stale_seconds
        self._cutoffs: dict[str, float] = {}
        self._loaded_at: float | None = None
        self._retry_at = 0.0  # after a failed load, the next attempt
        self._lock = threading.Lock()

    def _load(self) -> None:
        with db.engine.connect() as connection:
            rows = connection.execute(select(RevokedUser.user_id, RevokedUser.revoked_at)).all()
        self._cutoffs = {user_id: revoked_at.timestamp() for user_id, revoked_at in rows}
        self._loaded_at = time.monotonic()

    def cutoffs(self) -> dict[str, float]:
        now = time.monotonic()
        if self._loaded_at is not None and now - self._loaded_at < self.refresh_seconds:
            return self._cutoffs
        if now < self._retry_at:  # a load failed just now: no request waits on the database again until then
            return self._held(now)
        with self._lock:
            if self._loaded_at is not None and time.monotonic() - self._loaded_at < self.refresh_seconds:
                return self._cutoffs
            if time.monotonic() < self._retry_at:
                return self._held(now)
            try:
                self._load()
            except Exception as exc:
                self._retry_at = now + self.refresh_seconds
                log.warning("revocation list unreadable: %s", exc.__class__.__name__)
                return self._held(now)
        return self._cutoffs

    def _held(self, now: float) -> dict[str, float]:
        """The list held, while it is recent enough to trust; else 503."""
        if self._loaded_at is None or now - self._loaded_at > self.stale_seconds:
            raise ServiceUnavailable("Tokens cannot be checked right now; try again shortly.")
        return self._cutoffs

    def revoked(self, user_id: int | str, issued_at: float) -> bool:
        """Whether a credential of the user issued at `issued_at` (Unix time) is before the user's cut-off."""
        cutoff = self.cutoffs().get(str(user_id))
        return cutoff is not None and issued_at < cutoff

    def __call__(self, principal: Principal) -> bool:
        return self.revoked(principal.user_id, principal.issued_at)


def revoked_by_cutoff(user_id: int, issued_at: datetime) -> bool:
    """A credential other than an access token (a feed token), issued at `issued_at`, ended by the user's cut-off
    from `user-events` exactly as access tokens are, through the app's `RevocationList`: every one while the user
    is deactivated, and after a reactivation (or a role change) those issued before it."""
    _, revocations = current_app.extensions["servicekit.auth"]
    return revocations.revoked(user_id, issued_at.timestamp())


def init_auth(app: Flask, verifier: TokenVerifier, is_revoked: Callable[[Principal], bool] | None = None) -> None:
    """`is_revoked(principal)` decides whether a verified token was revoked since; by default the
    in-memory `RevocationList` fed by `user-events`."""
    app.extensions["servicekit.auth"] = (verifier, is_revoked or RevocationList())


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
        if is_revoked(principal):
            raise Unauthorized("This token has been revoked (the account was deactivated or its role changed).")
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

    wrapper.admin_only = True  # the OpenAPI spec documents its 403 (servicekit.openapi)
    return wrapper


def current_principal() -> Principal:
    return authenticate()


def _set_cutoff(user_id: str, cutoff: datetime) -> None:
    """Refuse the user's tokens issued before `cutoff` (a cut-off only ever moves later)."""
    statement = insert(RevokedUser).values(user_id=user_id, revoked_at=cutoff)
    where = RevokedUser.revoked_at < statement.excluded.revoked_at
    db.session.execute(
        statement.on_conflict_do_update(index_elements=[RevokedUser.user_id], set_={"revoked_at": cutoff}, where=where)
    )


def revocation_handlers() -> dict[str, Callable[[dict], None]]:
    """`user-events` handlers that keep `revoked_users` current; merge them into a service's consumer.

    A row is a cut-off: tokens of that user issued before `revoked_at` are refused. A
    deactivation sets it to the far future (every token); a reactivation brings it back to
    the time of the reactivation (tokens from before the deactivation stay dead); a role change
    (`sessions_revoked_at` in `user.updated`) moves it to the change."""

    def on_deactivated(envelope: dict) -> None:
        _set_cutoff(str(envelope["data"]["id"]), DEACTIVATED)

    def on_updated(envelope: dict) -> None:
        data = envelope["data"]
        user_id = str(data["id"])
        if data.get("is_active") is False:
            on_deactivated(envelope)
            return
        changed_at = datetime.fromisoformat(data.get("sessions_revoked_at") or envelope["occurred_at"])
        current = db.session.get(RevokedUser, user_id, with_for_update=True)
        if current is not None and current.revoked_at >= DEACTIVATED:
            current.revoked_at = changed_at  # reactivated: tokens from before stay refused
        elif data.get("sessions_revoked_at"):
            _set_cutoff(user_id, changed_at)

    return {"user.deactivated": on_deactivated, "user.updated": on_updated}
