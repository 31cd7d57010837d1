"""TokenVerifier keeps the tokens it verified (issue 10): a token's signature is checked once, not on
every request, yet an expired, tampered or revoked token is still refused at once."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, jsonify

from servicekit.auth import TokenVerifier, VerifiedTokens, authenticate, init_auth, require_auth
from servicekit.problems import Unauthorized, register_error_handlers


class CountingKeys:
    """A real Ed25519 key pair; counts how often the verifier asks for the key (= verifies a signature)."""

    def __init__(self, cache_seconds: float | None = None):
        self.private = Ed25519PrivateKey.generate()
        self.lookups = 0
        if cache_seconds is not None:
            self.cache_seconds = cache_seconds

    def signing_key_for(self, token: str):
        self.lookups += 1
        return self.private.public_key()

    def token(self, *, user_id: int = 7, ttl: float = 600, jti: str = "j", **extra) -> str:
        now = time.time()
        claims = {
            "sub": str(user_id),
            "role": "user",
            "typ": "access",
            "iss": "i",
            "aud": "a",
            "iat": now,
            "exp": now + ttl,
            "jti": jti,
            **extra,
        }
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": "k"})


def _verifier(keys, **options) -> TokenVerifier:
    return TokenVerifier(keys, issuer="i", audience="a", algorithms=("EdDSA",), **options)


def test_a_token_is_verified_once_then_served_from_the_cache():
    keys = CountingKeys()
    verifier = _verifier(keys)
    token = keys.token()
    first = verifier.verify(token)
    assert [verifier.verify(token) for _ in range(5)] == [first] * 5
    assert keys.lookups == 1
    assert first.user_id == 7 and first.role == "user" and first.token_id == "j"


def test_an_expired_token_is_refused_even_when_it_was_cached():
    keys = CountingKeys()
    verifier = _verifier(keys, leeway=0)
    token = keys.token(ttl=1.0)
    assert verifier.verify(token).user_id == 7
    time.sleep(1.1)
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)


def test_the_cache_keeps_the_leeway_of_the_uncached_check():
    keys = CountingKeys()
    token = keys.token(ttl=-5)  # expired 5 s ago: within a 10 s leeway
    cached = _verifier(keys, leeway=10)
    assert cached.verify(token).user_id == 7
    assert cached.verify(token).user_id == 7
    with pytest.raises(Unauthorized, match="expired"):
        _verifier(keys, leeway=2).verify(token)


def test_refused_tokens_are_not_cached_and_stay_refused():
    keys = CountingKeys()
    verifier = _verifier(keys)
    good = keys.token()
    header, payload, signature = good.split(".")
    forged = jwt.utils.base64url_encode(b'{"sub": "1"}').decode()
    tampered = f"{header}.{forged}.{signature}"
    for _ in range(3):
        with pytest.raises(Unauthorized):
            verifier.verify(tampered)
    assert len(verifier.verified) == 0
    other = CountingKeys()
    foreign = other.token()  # signed by a key the verifier does not trust
    for _ in range(2):
        with pytest.raises(Unauthorized):
            verifier.verify(foreign)
    assert len(verifier.verified) == 0


def test_the_key_sources_cache_period_bounds_how_long_a_token_is_trusted():
    keys = CountingKeys(cache_seconds=1)
    verifier = _verifier(keys)
    token = keys.token()
    verifier.verify(token)
    verifier.verify(token)
    assert keys.lookups == 1
    time.sleep(1.1)
    verifier.verify(token)
    assert keys.lookups == 2  # verified again against the keys as they are now


def test_the_cache_is_bounded_least_recently_used_first():
    cache = VerifiedTokens(max_entries=2)
    keys = CountingKeys()
    verifier = _verifier(keys)
    verifier.verified = cache
    a, b, c = (keys.token(jti=name) for name in "abc")
    verifier.verify(a)
    verifier.verify(b)
    verifier.verify(a)  # a is now the most recent
    verifier.verify(c)  # evicts b
    assert len(cache) == 2
    assert cache.get(a) is not None and cache.get(c) is not None and cache.get(b) is None


def test_revocation_is_checked_on_every_request_despite_the_cache():
    keys = CountingKeys()
    revoked: set[int] = set()
    app = Flask(__name__)
    register_error_handlers(app)
    init_auth(app, _verifier(keys), is_revoked=lambda principal: principal.user_id in revoked)

    @app.get("/whoami")
    @require_auth
    def whoami():
        return jsonify(user_id=authenticate().user_id)

    client = app.test_client()
    headers = {"Authorization": f"Bearer {keys.token(user_id=9)}"}
    assert client.get("/whoami", headers=headers).json == {"user_id": 9}
    assert client.get("/whoami", headers=headers).status_code == 200
    assert keys.lookups == 1
    revoked.add(9)
    refused = client.get("/whoami", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json["detail"]
