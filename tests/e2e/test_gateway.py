"""Requests through the real NGINX gateway to the real services (gunicorn), as clients make them."""

from __future__ import annotations

import json

PROBLEM = "application/problem+json"


def test_register_login_me_round_trip_through_the_gateway(gateway):
    user, headers = gateway.register_and_login()
    me = gateway.request("GET", "/api/users/me", headers=headers)
    assert me.status_code == 200
    assert me.json() == user


def test_the_first_admin_exists_and_can_list_users(gateway):
    tokens = gateway.request("POST", "/api/auth/login", json={"email": "root@example.com", "password": "root password"})
    assert tokens.status_code == 200
    users = gateway.request("GET", "/api/users", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
    assert users.status_code == 200
    assert "root@example.com" in [u["email"] for u in users.json()["items"]]


def test_registration_through_the_gateway_reaches_user_events(gateway, topics):
    user, _ = gateway.register_and_login()
    events = topics.collect(
        "user-events", lambda key, value: key == str(user["id"]) and value["data"].get("email") == user["email"], settle=1.0
    )
    assert len(events) == 1 and events[0]["event_type"] == "user.registered"


def test_request_ids_are_generated_echoed_and_passed_to_the_service(gateway, platform):
    generated = gateway.request("GET", "/api/auth/jwks")
    assert len(generated.headers["X-Request-ID"]) >= 16
    mine = gateway.request("GET", "/api/auth/jwks", headers={"X-Request-ID": "trace-abc-123"})
    assert mine.headers["X-Request-ID"] == "trace-abc-123"
    gateway.request(
        "POST",
        "/api/auth/login",
        json={"email": "nobody@example.com", "password": "x"},
        headers={"X-Request-ID": "trace-login-1"},
    )
    log = platform.services["user-service"].child.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{") and "trace-login-1" in line]
    assert lines and all(line["request_id"] == "trace-login-1" for line in lines)


def test_unknown_routes_and_internal_paths_are_404_problem_json(gateway):
    for path in ("/nope", "/metrics", "/healthz", "/internal/rooms/1", "/apidocs/"):
        response = gateway.request("GET", path)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == PROBLEM
        assert response.json()["status"] == 404


def test_service_errors_pass_through_as_problem_json(gateway):
    response = gateway.request("POST", "/api/auth/register", data=b"{broken", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.headers["Content-Type"] == PROBLEM
    assert gateway.request("GET", "/api/users/me").status_code == 401


def test_a_body_over_one_mebibyte_is_413_problem_json(gateway):
    response = gateway.request(
        "POST", "/api/auth/register", data=b"x" * (1024 * 1024 + 10), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == PROBLEM


def test_swagger_ui_and_the_specs_are_served_at_docs(gateway):
    page = gateway.request("GET", "/docs/")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert gateway.request("GET", "/docs/static/swagger-ui-bundle.js").status_code == 200
    spec = gateway.request("GET", "/docs/user-service.json").json()
    assert spec["openapi"].startswith("3.") and "/api/auth/login" in spec["paths"]


def test_the_gateway_root_sends_a_browser_to_the_docs(gateway):
    root = gateway.request("GET", "/", allow_redirects=False)
    assert root.status_code == 302
    assert root.headers["Location"] == "/docs/"  # relative: right behind any port mapping
    assert gateway.request("GET", "/").url.endswith("/docs/")


def test_a_route_whose_service_is_down_is_502_problem_json(gateway, platform):
    service = platform.services["user-service"]
    service.child.stop()
    try:
        response = gateway.request("GET", "/api/auth/jwks")
        assert response.status_code == 502
        assert response.headers["Content-Type"] == PROBLEM and response.headers["Retry-After"]
    finally:
        service.start()
    assert gateway.request("GET", "/api/auth/jwks").status_code == 200


def test_register_is_rate_limited_by_the_gateway_with_429_and_retry_after(gateway):
    statuses = []
    for _ in range(60):
        # An invalid body: the service would answer 422, so any 429 comes from the gateway's limit_req.
        response = gateway.request("POST", "/api/auth/register", json={}, retry_429=False)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Content-Type"] == PROBLEM
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["title"] == "Too Many Requests"
            break
    assert 429 in statuses and set(statuses) <= {422, 429}
