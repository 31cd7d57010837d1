"""The user section of API.md: register, login, refresh, logout, JWKS, lockout."""

from __future__ import annotations

import jwt
import pytest
from conftest import unique_email

PROBLEM = "application/problem+json"


def test_register_returns_the_user_without_secrets_and_lowercases_the_email(client):
    email = unique_email("MiXeD").replace("mixed", "MiXeD")
    response = client.post(
        "/api/auth/register", json={"email": email.upper(), "password": "long enough", "full_name": "Grace Hopper"}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "email", "full_name", "role", "is_active", "created_at"}
    assert body["email"] == email.lower()
    assert body["role"] == "user" and body["is_active"] is True
    assert body["created_at"].endswith("+00:00")
    assert response.headers["Location"] == f"/api/users/{body['id']}"


def test_duplicate_email_in_any_case_is_409(client, accounts):
    user = accounts.register()
    response = client.post(
        "/api/auth/register", json={"email": user["email"].upper(), "password": "long enough", "full_name": "X"}
    )
    assert response.status_code == 409
    assert response.content_type == PROBLEM
    assert response.get_json()["status"] == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "password": "short", "full_name": "A"}, "password"),
        ({"email": "not-an-email", "password": "long enough", "full_name": "A"}, "email"),
        ({"email": "a@example.com", "password": "long enough"}, "full_name"),
        ({"email": "a@example.com", "password": "long enough", "full_name": "A", "role": "admin"}, "role"),
        ({"email": "a@example.com", "password": 12345678, "full_name": "A"}, "password"),
        ({"email": "a@example.com", "password": "long enough", "full_name": "   "}, "full_name"),
    ],
    ids=["short-password", "bad-email", "missing-field", "unknown-field-no-mass-assignment", "wrong-type", "blank-name"],
)
def test_invalid_registration_is_422_naming_the_field(client, body, field):
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    problem = response.get_json()
    assert {"type", "title", "status", "detail", "errors"} <= set(problem)
    assert field in [error["field"] for error in problem["errors"]]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""], ids=["malformed", "array", "string", "empty"])
def test_malformed_or_non_object_body_is_400(client, raw):
    response = client.post("/api/auth/register", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.content_type == PROBLEM


def test_login_returns_tokens_whose_claims_match_the_contract(client, accounts):
    user = accounts.register()
    response = client.post("/api/auth/login", json={"email": user["email"], "password": "correct horse"})
    assert response.status_code == 200
    tokens = response.get_json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    assert tokens["refresh_token"]
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    jwks = client.get("/api/auth/jwks").get_json()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    claims = jwt.decode(
        tokens["access_token"], key.key, algorithms=["EdDSA"], audience="meeting-rooms-api", issuer="meeting-rooms"
    )
    assert claims["sub"] == str(user["id"]) and claims["role"] == "user"
    assert {"exp", "iat", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900


def test_wrong_password_and_unknown_email_get_the_same_401(client, accounts):
    user = accounts.register()
    wrong = client.post("/api/auth/login", json={"email": user["email"], "password": "wrong password"})
    unknown = client.post("/api/auth/login", json={"email": unique_email(), "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.content_type == PROBLEM


def test_repeated_failures_lock_the_account_with_429_and_retry_after(client, accounts):
    user = accounts.register()
    for _ in range(5):
        assert client.post("/api/auth/login", json={"email": user["email"], "password": "wrong"}).status_code == 401
    locked = client.post("/api/auth/login", json={"email": user["email"], "password": "correct horse"})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert locked.content_type == PROBLEM


def test_a_successful_login_resets_the_failure_count(client, accounts):
    user = accounts.register()
    for _ in range(4):
        client.post("/api/auth/login", json={"email": user["email"], "password": "wrong"})
    accounts.login(user["email"])
    for _ in range(4):
        assert client.post("/api/auth/login", json={"email": user["email"], "password": "wrong"}).status_code == 401
    assert client.post("/api/auth/login", json={"email": user["email"], "password": "correct horse"}).status_code == 200


def test_refresh_rotates_and_the_used_token_is_dead(client, accounts):
    user = accounts.register()
    first = accounts.login(user["email"])
    rotated = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/users/me", headers={"Authorization": f"Bearer {second['access_token']}"}).status_code == 200
    assert client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client, accounts):
    user = accounts.register()
    first = accounts.login(user["email"])
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}).get_json()
    assert client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
    assert client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401


def test_logout_is_204_and_kills_the_refresh_token(client, accounts):
    user = accounts.register()
    tokens = accounts.login(user["email"])
    assert client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_logout_and_refresh_with_an_unknown_token_are_401(client):
    assert client.post("/api/auth/logout", json={"refresh_token": "nope"}).status_code == 401
    assert client.post("/api/auth/refresh", json={"refresh_token": "nope"}).status_code == 401
    assert client.post("/api/auth/refresh", json={}).status_code == 422


def test_jwks_publishes_only_public_signing_keys(client):
    response = client.get("/api/auth/jwks")
    assert response.status_code == 200
    keys = response.get_json()["keys"]
    assert keys and all(k["kty"] == "OKP" and k["alg"] == "EdDSA" and k["use"] == "sig" and k["kid"] for k in keys)
    assert all("d" not in k for k in keys)  # never the private part


def test_the_worker_forgets_refresh_tokens_a_day_after_they_expired(client, accounts, app):
    """Every login and refresh adds a token row; a day past its expiry the row is deleted, and the token
    is then simply invalid. A live token, and one expired only an hour ago, stay."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from app.models import RefreshToken
    from app.tokens import hash_refresh_token
    from servicekit.db import db, utcnow
    from servicekit.worker import Scheduler

    user = accounts.register()
    gone, recent, live = (accounts.login(user["email"])["refresh_token"] for _ in range(3))
    with app.app_context():
        for token, expired_ago in ((gone, timedelta(days=2)), (recent, timedelta(hours=1))):
            db.session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == hash_refresh_token(token))
                .values(expires_at=utcnow() - expired_ago)
            )
        db.session.commit()
    job = next(j for j in app.extensions["servicekit.background"].jobs if j.name == "purge-expired-refresh-tokens")
    assert Scheduler(app, [job]).run_due() == 1
    with app.app_context():
        kept = set(db.session.execute(select(RefreshToken.token_hash).where(RefreshToken.user_id == user["id"])).scalars())
    assert kept == {hash_refresh_token(recent), hash_refresh_token(live)}
    refused = client.post("/api/auth/refresh", json={"refresh_token": gone})
    assert refused.status_code == 401 and refused.get_json()["detail"] == "The refresh token is invalid."
    expired = client.post("/api/auth/refresh", json={"refresh_token": recent})
    assert expired.status_code == 401 and expired.get_json()["detail"] == "The refresh token has expired."
    assert client.post("/api/auth/refresh", json={"refresh_token": live}).status_code == 200
