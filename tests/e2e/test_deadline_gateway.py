"""The gateway stamps each request (`X-Request-Start`), and a service refuses a request the gateway has given up
on: a write whose client got the gateway's 504 is not carried out when the stalled service runs again."""

from __future__ import annotations

import json
import uuid

import psutil
import requests

from servicekit.testing import wait_until

ANCIENT = {"X-Request-Start": "t=1"}


def test_the_gateway_replaces_any_stamp_a_client_sends_with_its_own(platform, gateway):
    _, auth = gateway.register_and_login()
    # Through the gateway the client's stamp (1970) is replaced by the gateway's: served.
    assert gateway.request("GET", "/api/users/me", headers={**auth, **ANCIENT}).status_code == 200
    # Straight to the service it is the only stamp, and far past the deadline: refused before any work.
    direct = requests.get(
        f"http://127.0.0.1:{platform.services['user-service'].port}/api/users/me", headers={**auth, **ANCIENT}, timeout=10
    )
    assert direct.status_code == 503
    assert direct.headers["Content-Type"] == "application/problem+json"
    assert direct.headers["Retry-After"] == "5"


def _refusals_logged(service, path: str) -> int:
    count = 0
    for line in (service.log_dir / f"{service.spec.name}.log").read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("method") == "POST" and entry.get("path") == path and entry.get("status") == 503:
            count += 1
    return count


def test_a_write_the_gateway_gave_up_on_is_not_carried_out_when_the_stalled_service_runs_again(platform, gateway):
    admin = gateway.login("root@example.com", "root password")
    room_service = platform.services["room-service"]
    master = psutil.Process(room_service.child.popen.pid)
    processes = [master, *master.children(recursive=True)]
    location = f"stalled-{uuid.uuid4().hex[:8]}"
    refused_before = _refusals_logged(room_service, "/api/rooms")
    for process in processes:
        process.suspend()
    try:
        # The request waits in the socket of the stopped processes; the gateway answers 504 after 15 s.
        answer = requests.post(
            f"{gateway.base}/api/rooms",
            json={"name": f"Room {location}", "capacity": 4, "location": location},
            headers=admin,
            timeout=60,
        )
    finally:
        for process in processes:
            process.resume()
    assert answer.status_code == 504
    assert answer.headers["Content-Type"] == "application/problem+json"
    # Running again, room-service reads the waiting request, finds it past its deadline and refuses it.
    wait_until(lambda: _refusals_logged(room_service, "/api/rooms") > refused_before, message="the late request refused")
    rooms = gateway.request("GET", f"/api/rooms?location={location}", headers=admin)
    assert rooms.status_code == 200
    assert rooms.json()["items"] == []
    # And the client's retry now creates the room, once.
    retry = gateway.request(
        "POST", "/api/rooms", json={"name": f"Room {location}", "capacity": 4, "location": location}, headers=admin
    )
    assert retry.status_code == 201, retry.text
    assert gateway.request("GET", f"/api/rooms?location={location}", headers=admin).json()["total"] == 1
