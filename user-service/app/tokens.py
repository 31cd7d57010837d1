"""Signing keys, the JWKS document and access tokens (PyJWT, asymmetric keys only)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from servicekit.config import ConfigError
from servicekit.db import utcnow


@dataclass(frozen=True)
class PublishedKey:
    kid: str
    alg: str
    public_key: Any
    jwk: dict


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _thumbprint(jwk: dict) -> str:
    """RFC 7638 JWK thumbprint, used as the key id."""
    required = {"OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _published(public_key: Any) -> PublishedKey:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        alg, jwk = "EdDSA", OKPAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise ConfigError("RSA signing keys must have at least 2048 bits")
        alg, jwk = "RS256", RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        raise ConfigError("signing keys must be Ed25519 or RSA")
    kid = _thumbprint(jwk)
    jwk.update(kid=kid, alg=alg, use="sig")
    return PublishedKey(kid, alg, public_key, jwk)


def _load_pem(pem: bytes, source: str) -> tuple[Any, Any | None]:
    """(public key, private key or None) from a PEM holding either."""
    try:
        private = serialization.load_pem_private_key(pem, password=None)
        return private.public_key(), private
    except (ValueError, TypeError):
        pass
    try:
        return serialization.load_pem_public_key(pem), None
    except ValueError:
        raise ConfigError(f"{source} does not hold a PEM key") from None


class KeyRing:
    """The signing key plus older keys still published for verification during rotation."""

    def __init__(self, signing_pem: bytes, extra_pems: list[tuple[bytes, str]] = ()):
        public, private = _load_pem(signing_pem, "the signing key")
        if private is None:
            raise ConfigError("the signing key must be a private key")
        self.signing_private = private
        self.signing = _published(public)
        self.keys = {self.signing.kid: self.signing}
        for pem, source in extra_pems:
            published = _published(_load_pem(pem, source)[0])
            self.keys.setdefault(published.kid, published)

    @classmethod
    def from_config(cls, config) -> KeyRing:
        if config.jwt_private_key:
            signing = config.jwt_private_key.encode()
        elif config.jwt_private_key_file:
            try:
                signing = Path(config.jwt_private_key_file).read_bytes()
            except OSError as exc:
                raise ConfigError(f"JWT_PRIVATE_KEY_FILE cannot be read: {exc.strerror}") from None
        else:
            raise ConfigError("JWT_PRIVATE_KEY_FILE or JWT_PRIVATE_KEY is required (the key that signs access tokens)")
        extra = []
        for path in config.jwt_extra_key_files:
            try:
                extra.append((Path(path).read_bytes(), path))
            except OSError as exc:
                raise ConfigError(f"JWT_EXTRA_KEY_FILES: {path} cannot be read: {exc.strerror}") from None
        ring = cls(signing, extra)
        if ring.signing.alg not in config.jwt_algorithms:
            raise ConfigError(f"the signing key is {ring.signing.alg} but JWT_ALGORITHMS is {','.join(config.jwt_algorithms)}")
        return ring

    def jwks(self) -> dict:
        return {"keys": [key.jwk for key in self.keys.values()]}

    def signing_key_for(self, token: str) -> Any:
        """KeySource for the kit's TokenVerifier: user-service verifies with its own keys, no HTTP."""
        from servicekit.problems import Unauthorized

        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.DecodeError:
            raise Unauthorized("The access token is malformed.") from None
        key = self.keys.get(kid)
        if key is None:
            raise Unauthorized("The access token was signed by an unknown key.")
        return key.public_key

    def issue_access_token(self, *, user_id: int, role: str, issuer: str, audience: str, ttl: int) -> str:
        # Sub-second `iat` (a valid NumericDate), so a revocation cut-off set by a role change never
        # catches a token issued just after it.
        now = token_time(utcnow()).timestamp()
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": str(user_id),
            "role": role,
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.signing_private, algorithm=self.signing.alg, headers={"kid": self.signing.kid})


def token_time(moment: datetime) -> datetime:
    """`moment` rounded down to 1/1024 s: exact in binary floating point, so `exp - iat` is exactly the TTL."""
    return datetime.fromtimestamp(math.floor(moment.timestamp() * 1024) / 1024, UTC)


def new_refresh_token() -> tuple[str, str]:
    """(token for the client, sha256 digest kept in the database)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
