"""Access-token verification: JWKS over real HTTP, and forged tokens refused."""

from __future__ import annotations

import base64
import json
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from servicekit.auth import JwksKeySource, TokenVerifier
from servicekit.problems import Unauthorized


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def live_jwks_url(app):
    """user-service served over real HTTP, so the kit's JWKS client really fetches the document."""
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/auth/jwks"
    server.shutdown()


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_peer_service_verifies_tokens_with_the_published_jwks(accounts, live_jwks_url):
    user, headers = accounts.user_with_token()
    verifier = TokenVerifier(
        JwksKeySource(live_jwks_url), issuer="meeting-rooms", audience="meeting-rooms-api", algorithms=("EdDSA",)
    )
    principal = verifier.verify(headers["Authorization"].split()[1])
    assert principal.user_id == user["id"] and principal.role == "user"


def test_a_token_signed_by_another_key_is_refused_by_the_jwks_verifier(live_jwks_url):
    foreign = Ed25519PrivateKey.generate()
    token = jwt.encode(
        {
            "sub": "1",
            "role": "admin",
            "typ": "access",
            "iss": "meeting-rooms",
            "aud": "meeting-rooms-api",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "jti": "x",
        },
        foreign,
        algorithm="EdDSA",
        headers={"kid": "attacker"},
    )
    verifier = TokenVerifier(
        JwksKeySource(live_jwks_url), issuer="meeting-rooms", audience="meeting-rooms-api", algorithms=("EdDSA",)
    )
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def _claims(user_id: int, role: str = "user", **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "role": role,
        "typ": "access",
        "iss": "meeting-rooms",
        "aud": "meeting-rooms-api",
        "iat": now,
        "exp": now + 600,
        "jti": "j",
    }
    claims.update(overrides)
    return claims


def test_alg_none_is_refused(client, accounts):
    user, _ = accounts.user_with_token()
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user['id'], 'admin'))}."
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 401


def test_hs256_signed_with_the_public_key_is_refused(client, accounts):
    user, _ = accounts.user_with_token()
    jwk = client.get("/api/auth/jwks").get_json()["keys"][0]
    public_bytes = base64.urlsafe_b64decode(jwk["x"] + "==")
    header = {"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}
    signing_input = f"{_b64(header)}.{_b64(_claims(user['id'], 'admin'))}"
    import hashlib
    import hmac

    signature = _b64(hmac.new(public_bytes, signing_input.encode(), hashlib.sha256).digest())
    response = client.get("/api/users/me", headers=bearer(f"{signing_input}.{signature}"))
    assert response.status_code == 401
    # Refused by the algorithm allow-list, before any key is used; not by a failure further down.
    assert response.get_json()["detail"] == "The access token's algorithm is not accepted."


def test_a_tampered_payload_is_refused(client, accounts):
    user, headers = accounts.user_with_token()
    header, _payload, signature = headers["Authorization"].split()[1].split(".")
    forged = f"{header}.{_b64(_claims(user['id'], 'admin'))}.{signature}"
    assert client.get("/api/users", headers=bearer(forged)).status_code == 401


def test_expired_wrong_issuer_and_wrong_audience_tokens_are_refused(client, accounts, signing_key_file):
    user, _ = accounts.user_with_token()
    key = serialization.load_pem_private_key(signing_key_file.read_bytes(), password=None)
    kid = client.get("/api/auth/jwks").get_json()["keys"][0]["kid"]
    valid = jwt.encode(_claims(user["id"]), key, algorithm="EdDSA", headers={"kid": kid})
    assert client.get("/api/users/me", headers=bearer(valid)).status_code == 200  # the forgeries below differ in one claim only
    for overrides in ({"exp": int(time.time()) - 60}, {"iss": "someone-else"}, {"aud": "another-api"}, {"typ": "refresh"}):
        token = jwt.encode(_claims(user["id"], **overrides), key, algorithm="EdDSA", headers={"kid": kid})
        assert client.get("/api/users/me", headers=bearer(token)).status_code == 401, overrides
