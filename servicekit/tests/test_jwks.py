"""JWKS key source over real HTTP: a key removed from the JWKS stops verifying within the cache period."""

from __future__ import annotations

import json
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from servicekit.auth import JwksKeySource, TokenVerifier
from servicekit.problems import Unauthorized


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def jwks_server():
    """A JWKS document whose keys the test changes at will."""
    published: dict[str, dict] = {}

    def application(environ, start_response):
        body = json.dumps({"keys": list(published.values())}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    server = make_server("127.0.0.1", 0, application, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks", published
    server.shutdown()


def _key(kid: str):
    private = Ed25519PrivateKey.generate()
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid=kid, alg="EdDSA", use="sig")
    return private, jwk


def _token(private, kid: str) -> str:
    now = int(time.time())
    claims = {"sub": "7", "role": "user", "typ": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600, "jti": "j"}
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid})


def test_a_key_removed_from_the_jwks_stops_verifying_within_the_cache_period(jwks_server):
    url, published = jwks_server
    old_private, old_jwk = _key("old")
    new_private, new_jwk = _key("new")
    published.update(old=old_jwk, new=new_jwk)
    verifier = TokenVerifier(JwksKeySource(url, cache_seconds=1), issuer="i", audience="a", algorithms=("EdDSA",))
    old_token, new_token = _token(old_private, "old"), _token(new_private, "new")
    assert verifier.verify(old_token).user_id == 7
    assert verifier.verify(new_token).user_id == 7

    del published["old"]  # rotated out (e.g. the key leaked)
    time.sleep(1.5)
    with pytest.raises(Unauthorized):
        verifier.verify(old_token)
    assert verifier.verify(new_token).user_id == 7
