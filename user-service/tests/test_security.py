"""Security hardening of user-service (issue 9): throttles, roles, the admin bootstrap, hashing limits,
malformed tokens and control characters."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from conftest import unique_email
from cryptography.hazmat.primitives import serialization

from app import services
from config import UserServiceConfig
from servicekit.config import ConfigError
from servicekit.db import OutboxEvent, db

PROBLEM = "application/problem+json"
ATTACKER = {"REMOTE_ADDR": "203.0.113.66"}
OWNER = {"REMOTE_ADDR": "198.51.100.7"}


def _login(client, email, password, address):
    return client.post("/api/auth/login", json={"email": email, "password": password}, environ_base=address)


def test_an_attacker_is_throttled_on_an_account_while_its_owner_logs_in_from_elsewhere(client, accounts):
    user = accounts.register()
    for _ in range(5):
        assert _login(client, user["email"], "wrong guess", ATTACKER).status_code == 401
    throttled = _login(client, user["email"], "correct horse", ATTACKER)  # even the right password waits
    assert throttled.status_code == 429 and throttled.content_type == PROBLEM
    assert int(throttled.headers["Retry-After"]) >= 1
    assert _login(client, user["email"], "correct horse", OWNER).status_code == 200


def test_the_delay_grows_with_each_further_failure(client, accounts, app):
    user = accounts.register()
    delays = []
    for _ in range(8):
        _login(client, user["email"], "wrong guess", ATTACKER)
        with app.app_context():
            throttle = db.session.get(services.AuthThrottle, ("login", user["email"], ATTACKER["REMOTE_ADDR"]))
            if throttle.blocked_until is not None:
                delays.append((throttle.blocked_until - throttle.updated_at).total_seconds())
            db.session.execute(db.update(services.AuthThrottle).values(blocked_until=None))  # let the next guess in
            db.session.commit()
    assert len(delays) == 4 and delays == sorted(delays) and delays[-1] >= 4 * delays[0]


def test_the_gateway_address_is_not_the_client_address(client, accounts):
    """Behind one trusted proxy the client is the last X-Forwarded-For entry: a spoofed first entry changes nothing."""
    user = accounts.register()
    for spoofed in range(6):
        response = client.post(
            "/api/auth/login",
            json={"email": user["email"], "password": "wrong guess"},
            headers={"X-Forwarded-For": f"10.0.0.{spoofed}, 203.0.113.66"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
    assert response.status_code == 429


def test_wrong_current_passwords_are_throttled_and_the_owner_is_not(client, accounts):
    user, headers = accounts.user_with_token()

    def change_password(current_password: str, caller: dict):
        body = {"password": "new password!", "current_password": current_password}
        return client.put(f"/api/users/{user['id']}", json=body, headers=headers, environ_base=caller)

    for _ in range(5):
        assert change_password("a guess", ATTACKER).status_code == 422
    throttled = change_password("correct horse", ATTACKER)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert change_password("correct horse", OWNER).status_code == 200


def test_a_demoted_admin_token_stops_at_once_and_cannot_promote_itself_back(client, accounts):
    _, boss_headers = accounts.admin_with_token()
    deputy, deputy_headers = accounts.admin_with_token()
    assert client.get("/api/users", headers=deputy_headers).status_code == 200
    assert client.put(f"/api/users/{deputy['id']}", json={"role": "user"}, headers=boss_headers).status_code == 200
    assert client.get("/api/users", headers=deputy_headers).status_code == 401
    assert client.put(f"/api/users/{deputy['id']}", json={"role": "admin"}, headers=deputy_headers).status_code == 401
    fresh = {"Authorization": f"Bearer {accounts.login(deputy['email'], 'admin password')['access_token']}"}
    assert client.put(f"/api/users/{deputy['id']}", json={"role": "admin"}, headers=fresh).status_code == 403


def test_tokens_from_before_a_deactivation_stay_dead_after_the_reactivation(client, accounts):
    _, admin_headers = accounts.admin_with_token()
    user, old_headers = accounts.user_with_token()
    assert client.put(f"/api/users/{user['id']}", json={"is_active": False}, headers=admin_headers).status_code == 200
    assert client.put(f"/api/users/{user['id']}", json={"is_active": True}, headers=admin_headers).status_code == 200
    assert client.get("/api/users/me", headers=old_headers).status_code == 401
    assert client.get(f"/api/users/{user['id']}", headers=old_headers).status_code == 401
    change = {"password": "a new password", "current_password": "correct horse"}
    assert client.put(f"/api/users/{user['id']}", json=change, headers=old_headers).status_code == 401
    fresh = {"Authorization": f"Bearer {accounts.login(user['email'])['access_token']}"}
    assert client.get("/api/users/me", headers=fresh).json["id"] == user["id"]


def test_an_admin_token_from_before_a_demotion_stays_dead_after_the_role_is_given_back(client, accounts):
    _, boss_headers = accounts.admin_with_token()
    deputy, deputy_headers = accounts.admin_with_token()
    for role in ("user", "admin"):
        assert client.put(f"/api/users/{deputy['id']}", json={"role": role}, headers=boss_headers).status_code == 200
    assert client.get("/api/users", headers=deputy_headers).status_code == 401
    fresh = {"Authorization": f"Bearer {accounts.login(deputy['email'], 'admin password')['access_token']}"}
    assert client.get("/api/users", headers=fresh).status_code == 200


def test_a_role_change_event_carries_the_revocation_cutoff(app, client, accounts):
    _, admin_headers = accounts.admin_with_token()
    user = accounts.register()
    before = time.time()
    assert client.put(f"/api/users/{user['id']}", json={"role": "admin"}, headers=admin_headers).status_code == 200
    with app.app_context():
        envelopes = [
            row.envelope
            for row in db.session.execute(db.select(OutboxEvent).where(OutboxEvent.key == str(user["id"]))).scalars().all()
        ]
    updated = [e for e in envelopes if e["event_type"] == "user.updated"]
    assert updated and "sessions_revoked_at" in updated[-1]["data"]
    from datetime import datetime

    assert datetime.fromisoformat(updated[-1]["data"]["sessions_revoked_at"]).timestamp() >= before - 1
    name_only = client.put(f"/api/users/{user['id']}", json={"full_name": "Renamed"}, headers=admin_headers)
    assert name_only.status_code == 200


def test_a_deactivated_admin_stays_deactivated_after_a_restart(app, client, accounts):
    email = unique_email("first-admin")
    with app.app_context():
        admin_id = services.ensure_admin(email, "admin password").id
    _, other_admin = accounts.admin_with_token()
    assert client.put(f"/api/users/{admin_id}", json={"is_active": False}, headers=other_admin).status_code == 200
    with app.app_context():  # what run.py does at every start
        assert services.ensure_admin(email, "admin password") is None
        assert db.session.get(services.User, admin_id).is_active is False


@pytest.mark.parametrize("password", ["change-me", "change-me-admin", "CHANGEME"])
def test_placeholder_admin_passwords_are_refused_outside_development(password):
    base = {"DATABASE_URL": "postgresql+psycopg://u:secret@db/users", "ADMIN_EMAIL": "a@example.com", "ADMIN_PASSWORD": password}
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD"):
        UserServiceConfig.from_env(base)
    assert UserServiceConfig.from_env({**base, "ENVIRONMENT": "development"}).admin_password == password


def test_a_placeholder_database_password_is_refused_outside_development():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        UserServiceConfig.from_env({"DATABASE_URL": "postgresql+psycopg://users:change-me-users@db/users"})


def test_passwords_are_hashed_with_owasp_argon2id_parameters(app, accounts):
    user = accounts.register()
    with app.app_context():
        stored = db.session.get(services.User, user["id"]).password_hash
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_an_old_hash_is_upgraded_at_the_next_login(app, accounts):
    from argon2 import PasswordHasher

    user = accounts.register()
    with app.app_context():
        row = db.session.get(services.User, user["id"])
        row.password_hash = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("correct horse")
        db.session.commit()
    accounts.login(user["email"])
    with app.app_context():
        assert db.session.get(services.User, user["id"]).password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_logins_beyond_the_hashing_slots_get_503_with_retry_after(client, accounts):
    user = accounts.register()
    hasher = services.hasher
    hasher.configure(1, 0.2)
    try:
        assert hasher._slots.acquire(timeout=5)  # the one slot is busy with someone else's login
        try:
            busy = client.post("/api/auth/login", json={"email": user["email"], "password": "correct horse"})
        finally:
            hasher._slots.release()
        assert busy.status_code == 503 and busy.content_type == PROBLEM and int(busy.headers["Retry-After"]) >= 1
        assert client.post("/api/auth/login", json={"email": user["email"], "password": "correct horse"}).status_code == 200
    finally:
        hasher.configure(2, 3)


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(signing_key_file, header_extra: dict, user_id: int) -> str:
    key = serialization.load_pem_private_key(signing_key_file.read_bytes(), password=None)
    now = int(time.time())
    claims = {"sub": str(user_id), "role": "user", "typ": "access", "iss": "meeting-rooms", "aud": "meeting-rooms-api"}
    claims.update(iat=now, exp=now + 600, jti="j")
    header = {"alg": "EdDSA", "typ": "JWT", **header_extra}
    signing_input = f"{_b64(header)}.{_b64(claims)}".encode()
    return f"{signing_input.decode()}.{_b64(key.sign(signing_input))}"


MALFORMED_HEADERS = [
    {"kid": 123},
    {"kid": ["a", "b"]},
    {"kid": {"x": 1}},
    {"crit": ["exp"]},
    {"crit": "b64"},
    {"crit": []},
    {"alg": 5},
    {"alg": None},
]


@pytest.mark.parametrize("extra", MALFORMED_HEADERS, ids=[json.dumps(h) for h in MALFORMED_HEADERS])
def test_every_malformed_token_header_is_401(client, accounts, signing_key_file, extra):
    user = accounts.register()
    token = _signed(signing_key_file, extra, user["id"])
    response = client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.content_type == PROBLEM


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer x.y.z",
        "Bearer ....",
        "Bearer " + _b64(b"\xff\xfe") + ".e30.",
        "Bearer " + _b64(b"[1, 2]") + ".e30.sig",
        "Bearer " + _b64(b"null") + ".e30.sig",
        "Bearer " + "a" * 5000,
        "Bearer eyJhbGciOiJFZERTQSJ9.%%%.sig",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "bearer  ",
    ],
)
def test_garbage_authorization_headers_are_401(client, authorization):
    response = client.get("/api/users/me", headers={"Authorization": authorization})
    assert response.status_code == 401 and response.content_type == PROBLEM


def test_a_token_with_an_iat_that_is_not_a_number_is_401(client, accounts, signing_key_file):
    user = accounts.register()
    key = serialization.load_pem_private_key(signing_key_file.read_bytes(), password=None)
    kid = client.get("/api/auth/jwks").get_json()["keys"][0]["kid"]
    now = int(time.time())
    for iat in ("yesterday", True, [now]):
        claims = {"sub": str(user["id"]), "role": "user", "typ": "access", "iss": "meeting-rooms", "aud": "meeting-rooms-api"}
        token = jwt.encode({**claims, "iat": iat, "exp": now + 600, "jti": "j"}, key, algorithm="EdDSA", headers={"kid": kid})
        assert client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401, iat


@pytest.mark.parametrize(
    "name", ["Ada\nBcc: victim@example.com", "Ada\rLovelace", "Ada\x1b[31m", "Ada\u0085Lovelace", "Tab\there"]
)
def test_control_characters_in_full_name_are_422_naming_the_field(client, accounts, name):
    response = client.post("/api/auth/register", json={"email": unique_email(), "password": "long enough", "full_name": name})
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["full_name"]
    user, headers = accounts.user_with_token()
    response = client.put(f"/api/users/{user['id']}", json={"full_name": name}, headers=headers)
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["full_name"]


def test_the_service_role_reads_and_writes_its_tables_but_cannot_change_the_schema(
    fresh_database, infrastructure, signing_key_file
):
    """`run.py migrate` as the owner creates DATABASE_APP_ROLE with DML rights only; the service runs as it."""
    import os
    import subprocess
    import sys
    import uuid as uuid_module
    from pathlib import Path

    import psycopg

    owner_url = fresh_database("roles")
    role = f"users_app_{uuid_module.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": owner_url,
        "DATABASE_APP_ROLE": role,
        "DATABASE_APP_PASSWORD": "app-password",
        "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap,
        "JWT_PRIVATE_KEY_FILE": str(signing_key_file),
        "LOG_LEVEL": "WARNING",
    }
    migrated = subprocess.run(
        [sys.executable, "run.py", "migrate"], cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    app_url = owner_url.replace("postgresql+psycopg://postgres@", f"postgresql://{role}:app-password@")
    with psycopg.connect(app_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO users (email, full_name, password_hash) VALUES ('x@example.com', 'X', 'h') RETURNING id"
        ).fetchone()
        assert connection.execute("SELECT count(*) FROM users").fetchone()[0] == 1
        connection.execute("DELETE FROM users")
        for statement in (
            "DROP TABLE users",
            "ALTER TABLE users ADD COLUMN evil text",
            "CREATE TABLE evil (id int)",
            "TRUNCATE outbox_events",
            "UPDATE alembic_version SET version_num = 'x'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
