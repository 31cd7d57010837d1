"""Security hardening seen from outside, through the real NGINX gateway (issue 9)."""

from __future__ import annotations

import base64
import http.client
import json
import time
import uuid

import pytest

PROBLEM = "application/problem+json"


def _login_from(platform, address: str, email: str, password: str) -> int:
    """A login sent from another loopback address (127.0.0.2 is another client to the gateway)."""
    connection = http.client.HTTPConnection("127.0.0.1", platform.ports.gateway, timeout=10, source_address=(address, 0))
    try:
        body = json.dumps({"email": email, "password": password})
        connection.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_an_attacker_guessing_a_password_is_throttled_while_the_owner_logs_in_from_elsewhere(gateway, platform):
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    registered = gateway.request(
        "POST", "/api/auth/register", json={"email": email, "password": "owner secret", "full_name": "V"}
    )
    assert registered.status_code == 201
    for _ in range(5):
        assert _login_from(platform, "127.0.0.3", email, "a guess") == 401
    assert _login_from(platform, "127.0.0.3", email, "owner secret") == 429
    assert _login_from(platform, "127.0.0.2", email, "owner secret") == 200


def test_reservation_writes_are_rate_limited_per_token_with_429_problem_json(gateway):
    _, busy = gateway.register_and_login()
    _, calm = gateway.register_and_login()
    statuses = []
    limited = None
    for _ in range(60):
        # An invalid body: the service answers 422, so a 429 can only come from the gateway's write limit.
        response = gateway.request("POST", "/api/reservations", json={}, headers=busy, retry_429=False)
        statuses.append(response.status_code)
        if response.status_code == 429:
            limited = response
            break
    assert limited is not None, f"no 429 in {statuses}"
    assert set(statuses) <= {422, 429}
    assert limited.headers["Content-Type"].startswith(PROBLEM) and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["status"] == 429
    # Another user's writes and the same user's reads are not limited by it.
    assert gateway.request("POST", "/api/reservations", json={}, headers=calm, retry_429=False).status_code == 422
    assert gateway.request("GET", "/api/reservations", headers=busy, retry_429=False).status_code == 200


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


MALFORMED = [
    "Bearer " + _b64({"alg": "EdDSA", "kid": 7}) + "." + _b64({"sub": "1"}) + ".c2ln",
    "Bearer " + _b64({"alg": "EdDSA", "kid": ["x"]}) + "." + _b64({"sub": "1"}) + ".c2ln",
    "Bearer " + _b64({"alg": "EdDSA", "kid": "k", "crit": ["exp"]}) + "." + _b64({"sub": "1"}) + ".c2ln",
    "Bearer " + _b64({"alg": "EdDSA", "crit": "b64"}) + "." + _b64({"sub": "1"}) + ".c2ln",
    "Bearer " + _b64(b"[]") + ".e30.c2ln",
    "Bearer not-a-token",
    "Bearer a.b.c.d.e",
    "Basic cm9vdDpyb290",
]


@pytest.mark.parametrize("path", ["/api/users/me", "/api/rooms", "/api/reservations"])
def test_malformed_tokens_are_401_in_every_service(gateway, path):
    for authorization in MALFORMED:
        response = gateway.request("GET", path, headers={"Authorization": authorization}, retry_429=False)
        assert response.status_code == 401, (authorization, response.status_code, response.text[:200])
        assert response.headers["Content-Type"].startswith(PROBLEM)


def test_a_title_with_a_line_break_is_refused_naming_the_field(gateway):
    _, headers = gateway.register_and_login()
    body = {
        "room_id": 1,
        "title": "Standup\r\nBcc: everyone@example.com",
        "start_time": "2030-01-07T09:00:00+00:00",
        "end_time": "2030-01-07T09:30:00+00:00",
    }
    response = gateway.request("POST", "/api/reservations", json=body, headers=headers)
    assert response.status_code == 422
    assert "title" in [error["field"] for error in response.json()["errors"]]


def _statuses(gateway, paths, headers) -> list[int]:
    return [gateway.request("GET", path, headers=headers).status_code for path in paths]


def _until(gateway, paths, headers, wanted: list[int]) -> list[int]:
    """The statuses once they are `wanted` (the other services learn from user-events, within seconds), or after 15 s."""
    deadline = time.monotonic() + 15
    while (statuses := _statuses(gateway, paths, headers)) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return statuses


def test_a_token_from_before_a_deactivation_stays_dead_in_every_service_after_the_reactivation(gateway):
    admin = gateway.login("root@example.com", "root password")
    user, old = gateway.register_and_login()
    paths = ("/api/users/me", "/api/rooms", "/api/reservations")
    assert _statuses(gateway, paths, old) == [200, 200, 200]
    assert gateway.request("PUT", f"/api/users/{user['id']}", json={"is_active": False}, headers=admin).status_code == 200
    assert _until(gateway, paths, old, [401, 401, 401]) == [401, 401, 401]
    assert gateway.request("PUT", f"/api/users/{user['id']}", json={"is_active": True}, headers=admin).status_code == 200
    fresh = gateway.login(user["email"], "long enough")
    # A new login works everywhere once the reactivation has arrived; the old token still does not.
    assert _until(gateway, paths, fresh, [200, 200, 200]) == [200, 200, 200]
    assert _statuses(gateway, paths, old) == [401, 401, 401]
