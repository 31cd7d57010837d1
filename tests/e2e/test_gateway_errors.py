"""Every error a client can provoke at the gateway (NGINX) or at gunicorn behind it is a problem document.

Requests that `requests` would not send (or would fix up) go over a raw socket."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

PROBLEM = "application/problem+json"


def send_raw(platform, head: bytes, body: bytes = b"") -> http.client.HTTPResponse:
    """Send bytes as they are to the gateway and read its answer (the body is read before returning)."""
    sock = socket.create_connection(("127.0.0.1", platform.ports.gateway), timeout=10)
    try:
        sock.sendall(head + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.body = response.read()
        return response
    finally:
        sock.close()


def raw_get(target: bytes, headers: bytes = b"", version: bytes = b"HTTP/1.1", method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" " + version + b"\r\nHost: localhost\r\n" + headers + b"Connection: close\r\n\r\n"


def assert_problem(response, status: int) -> None:
    assert response.status == status, (response.status, response.body[:200])
    assert response.headers["Content-Type"] == PROBLEM
    problem = json.loads(response.body)
    assert problem["status"] == status and problem["title"] and problem["detail"]


@pytest.fixture
def token(gateway) -> dict:
    _, headers = gateway.register_and_login()
    return headers


def test_a_uri_too_long_is_414_problem_json(gateway, token):
    response = gateway.request("GET", "/api/rooms?location=" + "x" * 9000, headers=token)
    assert response.status_code == 414
    assert response.headers["Content-Type"] == PROBLEM
    assert response.json()["status"] == 414


@pytest.mark.parametrize("path", ["/api/rooms", "/api/users", "/api/reservations", "/api/auth/jwks", "/api/blackouts"])
def test_a_uri_the_gateway_accepts_reaches_the_service(gateway, token, path):
    # The longest request line NGINX takes (8190 bytes) is the longest gunicorn takes: the service
    # answers it (a 200, or its own 422 for a filter that long).
    target = path + "?location="
    target += "x" * (8190 - len(f"GET {target} HTTP/1.1"))
    response = gateway.request("GET", target, headers=token)
    assert response.status_code not in (414, 431), response.text[:200]
    assert response.headers["Content-Type"] in ("application/json", PROBLEM)


def test_too_many_headers_are_refused_as_problem_json(gateway, token):
    extra = {f"X-Extra-{i}": "v" for i in range(110)}
    response = gateway.request("GET", "/api/rooms", headers={**token, **extra})
    assert response.status_code == 431
    assert response.headers["Content-Type"] == PROBLEM
    assert response.json()["status"] == 431


def test_a_header_too_large_is_400_problem_json(gateway, token):
    response = gateway.request("GET", "/api/rooms", headers={**token, "X-Big": "a" * 9000})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == PROBLEM
    assert response.json()["status"] == 400


def test_headers_over_32_kib_together_are_400_problem_json(gateway, token):
    big = {f"X-Big-{i}": "a" * 7000 for i in range(5)}
    response = gateway.request("GET", "/api/rooms", headers={**token, **big})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == PROBLEM


def test_a_header_as_long_as_the_gateway_accepts_reaches_the_service(gateway, token):
    # A header line of 8 KiB, the most NGINX takes, grown by the peer NGINX appends to X-Forwarded-For
    # or by the X-Forwarded-Host it makes of Host, still fits gunicorn's limit.
    for name in ("X-Forwarded-For", "X-Note"):
        value = "1" * (8190 - len(f"{name}: "))
        response = gateway.request("GET", "/api/rooms", headers={**token, name: value})
        assert response.status_code == 200, name
    host = ("h" * 62 + ".") * 128
    response = gateway.request("GET", "/api/rooms", headers={**token, "Host": host[: 8190 - len("Host: ")].rstrip(".")})
    assert response.status_code != 431 and response.headers["Content-Type"] in ("application/json", PROBLEM)


def test_a_nul_in_the_path_is_400_problem_json(gateway, token):
    response = gateway.request("GET", "/api/rooms/%00", headers=token)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == PROBLEM
    assert response.json()["status"] == 400


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(raw_get(b"/api/rooms", method=b"G@T"), id="bad-method"),
        pytest.param(raw_get(b"/api/rooms/a b"), id="space-in-target"),
        pytest.param(raw_get(b"/api/rooms/%zz"), id="bad-percent-escape"),
        pytest.param(raw_get(b"/api/rooms?a=\x01"), id="control-byte-in-query"),
        pytest.param(raw_get(b"/../../etc/passwd"), id="above-the-root"),
        pytest.param(b"GET /api/rooms HTTP/1.1\r\nConnection: close\r\n\r\n", id="http11-without-host"),
        pytest.param(raw_get(b"/api/rooms", b"Host: other\r\n"), id="two-hosts"),
        pytest.param(raw_get(b"/api/rooms", b"X-A: 1\r\n  folded\r\n"), id="folded-header"),
        pytest.param(raw_get(b"/api/rooms", b"Content-Length: abc\r\n", method=b"POST"), id="bad-content-length"),
        pytest.param(
            raw_get(b"/api/rooms", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", method=b"POST") + b"0\r\n\r\n",
            id="chunked-and-content-length",
        ),
        pytest.param(
            raw_get(b"/api/rooms", b"Transfer-Encoding: chunked\r\n", method=b"POST") + b"zz\r\n\r\n", id="bad-chunk-size"
        ),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, id="tls-on-the-plain-port"),
    ],
)
def test_a_malformed_request_is_400_problem_json(platform, request_bytes):
    assert_problem(send_raw(platform, request_bytes), 400)


def test_an_unknown_transfer_encoding_is_501_problem_json(platform):
    response = send_raw(platform, raw_get(b"/api/rooms", b"Transfer-Encoding: gzip\r\n", method=b"POST"))
    assert_problem(response, 501)


def test_an_http_version_other_than_1_x_is_505_problem_json(platform):
    assert_problem(send_raw(platform, raw_get(b"/api/rooms", version=b"HTTP/2.0")), 505)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(raw_get(b"/api/rooms", b"X-Note: a\x01b\r\n"), id="control-byte-in-a-header"),
        pytest.param(raw_get("/api/rooms/é".encode()), id="raw-utf8-in-the-path"),
        pytest.param(raw_get(b"/api/rooms", b"Content-Type: a/b\r\nContent-Type: c/d\r\n"), id="two-content-types"),
    ],
)
def test_a_request_gunicorn_refuses_behind_the_gateway_is_400_problem_json(platform, request_bytes):
    # NGINX passes these on; gunicorn refuses them before the app sees them, and says so as problem+json.
    assert_problem(send_raw(platform, request_bytes), 400)


@pytest.mark.parametrize("header", ["X-Forwarded-Ssl: on", "X-Forwarded-Protocol: ssl"])
def test_a_client_scheme_header_is_not_passed_to_the_services(gateway, token, header):
    # gunicorn reads the scheme from these too, and would refuse one contradicting the gateway's
    # X-Forwarded-Proto; the gateway drops them.
    name, value = header.split(": ")
    response = gateway.request("GET", "/api/rooms", headers={**token, name: value})
    assert response.status_code == 200


def test_a_range_outside_the_docs_page_is_416_problem_json(platform):
    response = send_raw(platform, raw_get(b"/docs/", b"Range: bytes=99999999-\r\n"))
    assert response.status == 416
    assert response.headers["Content-Type"].split(";")[0] == PROBLEM


def test_a_failed_precondition_on_the_docs_page_is_412_problem_json(platform):
    assert_problem(send_raw(platform, raw_get(b"/docs/", b'If-Match: "nope"\r\n')), 412)


def test_a_service_own_400_and_404_reach_the_client_unchanged(gateway, token):
    # error_page covers NGINX's own answers only: a service's problem document keeps its detail.
    broken = gateway.request("POST", "/api/auth/register", data=b"{broken", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.headers["Content-Type"] == PROBLEM
    assert broken.json()["detail"] != "The request is malformed."
    missing = gateway.request("GET", "/api/rooms/999999999", headers=token)
    assert missing.status_code == 404 and missing.headers["Content-Type"] == PROBLEM
    assert missing.json()["detail"] != "No such route."
