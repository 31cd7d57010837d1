"""problem+json for every error, request ids, health, metrics and validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

PROBLEM = "application/problem+json"


def test_an_unexpected_error_is_a_generic_500_without_internals(client):
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.content_type == PROBLEM
    assert "secret internals" not in response.get_data(as_text=True)
    assert response.get_json()["title"] == "Internal Server Error"


@pytest.mark.parametrize(("method", "path", "status"), [("get", "/nowhere", 404), ("delete", "/widgets", 405)])
def test_werkzeug_errors_are_problem_json(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.content_type == PROBLEM
    assert response.get_json()["status"] == status


def test_a_body_over_the_limit_is_413_problem_json(client):
    response = client.post("/widgets", data=b"x" * (1024 * 1024 + 1), content_type="application/json")
    assert response.status_code == 413
    assert response.content_type == PROBLEM


def test_problem_extensions_are_kept(client):
    body = client.get("/conflict").get_json()
    assert body["status"] == 409 and body["conflicts"] == [{"id": 1}]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "ok", "size": 2}, 201, None),
        ({"name": "ok", "size": "2"}, 422, "size"),
        ({"name": "ok", "size": 0}, 422, "size"),
        ({"name": "ok"}, 422, "size"),
        ({"name": "ok", "size": 2, "extra": 1}, 422, "extra"),
        ({"name": "far too long a name", "size": 2}, 422, "name"),
    ],
)
def test_bodies_are_validated_strictly(client, body, status, field):
    response = client.post("/widgets", json=body)
    assert response.status_code == status
    if field:
        assert response.content_type == PROBLEM
        assert [e["field"] for e in response.get_json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 200), ("per_page=100", 200), ("per_page=0", 422), ("page=0", 422), ("page=x", 422), ("what=1", 422)],
)
def test_pagination_parameters_are_validated(client, query, status):
    assert client.get(f"/widgets?{query}").status_code == status


@pytest.mark.parametrize("asked", [101, 1000, 10**30])
def test_per_page_above_100_is_capped_at_100(client, asked):
    response = client.get(f"/widgets?per_page={asked}")
    assert response.status_code == 200
    assert response.get_json()["per_page"] == 100


def test_request_ids_are_generated_or_echoed(client):
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    # A header that could inject into logs is replaced, not echoed.
    assert client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"}).headers["X-Request-ID"] != "bad id\twith tab"


def test_healthz_and_readyz_report_the_real_dependencies(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_when_the_broker_is_unreachable(app):
    from dataclasses import replace

    from devstack.processes import free_port
    from servicekit.kafka import broker_reachable

    assert broker_reachable(app.config["SERVICE"].kafka_bootstrap_servers)
    original = app.config["SERVICE"]
    app.config["SERVICE"] = replace(original, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["broker"] == "unreachable"
    finally:
        app.config["SERVICE"] = original


def test_metrics_expose_request_counts_with_the_service_label(client):
    client.post("/widgets", json={"name": "ok", "size": 1})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'flask_http_request_total{method="POST",service="kit-test",status="201"}' in text
    assert "outbox_pending_events" in text


def test_the_openapi_spec_carries_the_schemas(client):
    spec = client.get("/apispec.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"Problem", "Widget"} <= set(spec["components"]["schemas"])


def test_config_reports_every_missing_or_bad_variable_at_once():
    from servicekit.config import BaseConfig, ConfigError

    with pytest.raises(ConfigError) as error:
        BaseConfig.from_env({"PORT": "zero", "JWT_ALGORITHMS": "HS256", "JWKS_URL": "user-service:5001/jwks"})
    message = str(error.value)
    assert "DATABASE_URL is required" in message and "PORT" in message and "HS256" in message
    assert "JWKS_URL" in message  # URL settings are read as absolute http(s) URLs (servicekit.config.parse_http_url)


@pytest.mark.parametrize("depth", [65, 490, 1000, 100_000])
def test_a_body_nested_too_deep_is_400_problem_json_not_a_500(client, depth):
    """Deeper than MAX_JSON_DEPTH (64) is refused as unreadable, at any depth: 490 levels made the NUL check
    recurse past Python's limit, 1,000 made json.loads do so (both were 500)."""
    nested_field = '{"name": "ok", "size": 1, "extra": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/widgets", data=nested_field, content_type="application/json")
    assert response.status_code == 400 and response.content_type == PROBLEM, (depth, response.get_json())
    assert response.get_json()["detail"] == "The body nests more than 64 levels of arrays and objects."
    not_an_object = client.post("/widgets", data="[" * depth + "]" * depth, content_type="application/json")
    assert not_an_object.status_code == 400 and not_an_object.content_type == PROBLEM


def test_a_body_nested_within_the_limit_is_validated_as_usual(client):
    nested = {"name": "ok", "size": 1, "extra": [[[["\x00"]]]]}
    response = client.post("/widgets", json=nested)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "extra.0.0.0.0", "message": "Must not contain NUL characters."}]
    body = '{"name": "ok", "size": 1, "extra": ' + "[" * 63 + "]" * 63 + "}"
    response = client.post("/widgets", data=body, content_type="application/json")
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["extra"]


def test_nul_characters_are_422_not_a_database_error(client):
    response = client.post("/widgets", json={"name": "a\x00b", "size": 1})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "name", "message": "Must not contain NUL characters."}]
    assert client.get("/widgets?page=1%00").status_code == 422


def test_a_total_is_exact_up_to_the_cap_and_a_flagged_planner_estimate_beyond(app):
    from sqlalchemy import func, select

    from servicekit.db import db
    from servicekit.pagination import count_rows

    rows = select(func.generate_series(1, 500).label("n"))
    with app.app_context():
        assert count_rows(db.session, rows, cap=1000) == (500, False)
        total, estimated = count_rows(db.session, rows, cap=100)
        assert estimated is True and total > 100  # never counted past the cap; PostgreSQL plans 500 rows here


def test_json_answers_are_written_by_orjson_keeping_order_utf8_and_iso_times(app):
    moment = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    with app.app_context():
        response = app.json.response({"zeta": "Zoë", "alpha": moment, "price": Decimal("1.50"), "ids": (1, 2)})
    assert response.mimetype == "application/json"
    # keys in the order built, UTF-8 rather than \u escapes, times in RFC 3339 (Flask's default: sorted keys,
    # "Zo\u00eb", and an HTTP date)
    assert response.get_data() == '{"zeta":"Zoë","alpha":"2027-03-01T08:00:00+00:00","price":"1.50","ids":[1,2]}\n'.encode()


def test_what_orjson_cannot_write_falls_back_to_the_standard_library_not_a_500(app):
    with app.app_context():
        assert json.loads(app.json.dumps({"big": 2**70, "n": 1})) == {"big": 2**70, "n": 1}
        assert json.loads(app.json.response(big=2**70).get_data()) == {"big": 2**70}
        assert app.json.dumps({"a": 1}, indent=2) == '{\n  "a": 1\n}'
