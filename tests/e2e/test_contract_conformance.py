"""The specs the gateway serves at /docs tell the truth: requests generated from each of them (schemathesis),
sent through the gateway, get only documented status codes, content types and response bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

SPECS = ("user-service", "room-service", "reservation-service")


def _conformance_checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _run_conformance(base: str, spec: str, headers: dict, max_examples: int) -> list[str]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{base}/docs/{spec}.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{spec} documents no operation"
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(base_url=base, headers=headers, checks=_conformance_checks())

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    return failures


@pytest.mark.parametrize("spec", SPECS)
def test_generated_requests_through_the_gateway_conform_to_the_served_spec(gateway, platform, spec):
    _, headers = gateway.register_and_login()
    base = f"http://127.0.0.1:{platform.ports.gateway}"
    failures = _run_conformance(base, spec, headers, max_examples=8)
    assert not failures, "\n\n".join(failures)


def test_every_documented_path_is_routed_by_the_gateway(gateway):
    # A path in a served spec that the gateway does not route answers NGINX's own 404.
    for spec in SPECS:
        paths = gateway.request("GET", f"/docs/{spec}.json").json()["paths"]
        for path in paths:
            concrete = path.replace("{", "").replace("}", "")
            answer = gateway.request("OPTIONS", concrete.replace("_id", "1"), retry_429=False)
            assert "No such route." not in answer.text, f"{spec}: {path} is not routed by the gateway"


def _served_operation(platform, spec: str, path: str, method: str):
    import schemathesis

    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{platform.ports.gateway}/docs/{spec}.json")
    return schema[path][method]


def _room_and_slot(gateway, name: str) -> tuple[dict, dict]:
    admin = gateway.login("root@example.com", "root password")
    room = gateway.request("POST", "/api/rooms", json={"name": name, "capacity": 4}, headers=admin)
    assert room.status_code == 201, room.text
    start = (datetime.now(UTC) + timedelta(days=5)).replace(hour=10, minute=0, second=0, microsecond=0)
    slot = {"room_id": room.json()["id"], "title": "Conformance", "start_time": start.isoformat()}
    return room.json(), {**slot, "end_time": (start + timedelta(hours=1)).isoformat()}


def test_a_replayed_client_error_is_the_same_problem_document(gateway, platform):
    _, headers = gateway.register_and_login()
    _, slot = _room_and_slot(gateway, f"Replay {uuid.uuid4().hex[:6]}")
    invalid = {**slot, "end_time": slot["start_time"]}  # end not after start: 422
    key = {"Idempotency-Key": uuid.uuid4().hex, **headers}
    first = gateway.request("POST", "/api/reservations", json=invalid, headers=key)
    replay = gateway.request("POST", "/api/reservations", json=invalid, headers=key)
    assert first.status_code == replay.status_code == 422
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Content-Type"].startswith("application/problem+json")
    assert replay.json() == first.json()
    _served_operation(platform, "reservation-service", "/api/reservations", "POST").validate_response(replay)


def test_changing_a_cancelled_reservation_is_a_documented_409(gateway, platform):
    _, headers = gateway.register_and_login()
    _, slot = _room_and_slot(gateway, f"Cancelled {uuid.uuid4().hex[:6]}")
    booked = gateway.request("POST", "/api/reservations", json=slot, headers=headers)
    assert booked.status_code == 201, booked.text
    path = f"/api/reservations/{booked.json()['id']}"
    assert gateway.request("DELETE", path, headers=headers).status_code == 204
    changed = gateway.request("PUT", path, json={"title": "Too late"}, headers=headers)
    assert changed.status_code == 409 and "conflicts" not in changed.json()
    _served_operation(platform, "reservation-service", "/api/reservations/{reservation_id}", "PUT").validate_response(changed)
