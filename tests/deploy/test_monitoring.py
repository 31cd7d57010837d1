"""monitoring/: Prometheus config, alert rules and their unit tests (promtool), Grafana provisioning and
dashboards (every query parsed by promtool, every metric one the services export), Loki and Fluent Bit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from deploy_helpers import (
    DASHBOARDS,
    REPO,
    SERVICES,
    _as_plain_promql,
    dashboard_queries,
    load_yaml,
    metric_names,
    output_of,
    run,
    run_on_file,
    tool,
)

MONITORING = REPO / "monitoring"
PROMETHEUS = MONITORING / "prometheus"

# prometheus-flask-exporter's default metrics, and Prometheus' own.
EXPORTER_METRICS = {
    "flask_http_request_duration_seconds_bucket",
    "flask_http_request_duration_seconds_count",
    "flask_http_request_duration_seconds_sum",
    "flask_http_request_total",
    "flask_http_request_exceptions_total",
    "up",
}


def test_prometheus_config_is_valid_for_promtool():
    result = run(tool("promtool"), "check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, output_of(result)
    assert "SUCCESS" in result.stdout


def test_alert_rules_are_valid_for_promtool():
    result = run(tool("promtool"), "check", "rules", PROMETHEUS / "alerts.yml")
    assert result.returncode == 0, output_of(result)


def test_alert_rules_pass_their_promtool_unit_tests():
    result = run(tool("promtool"), "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, output_of(result)
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path):
    broken = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m]) >\n"
    assert run_on_file(tmp_path, "bad.yml", broken, tool("promtool"), "check", "rules").returncode != 0


def test_prometheus_scrapes_every_service_as_its_own_job():
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {
        job["job_name"]: [target for group in job["static_configs"] for target in group["targets"]]
        for job in config["scrape_configs"]
    }
    for service, port in SERVICES.items():
        assert jobs[service] == [f"{service}:{port}", f"{service}-worker:{port}"]  # request processes, worker


def test_alerts_cover_errors_latency_outbox_consumer_lag_and_service_down():
    rules = [r for g in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"HighErrorRate", "HighLatency", "OutboxBacklog", "ConsumerLagHigh", "ServiceDown"} <= names
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yml").read_text()))
    assert names == tested, f"alerts without a unit test: {names - tested}"
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning") and rule["annotations"]["summary"]


def test_every_dashboard_query_parses_as_promql(tmp_path):
    queries = list(dashboard_queries())
    assert queries
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"dashboard:query_{i}", "expr": _as_plain_promql(q)} for i, (_, _, q) in enumerate(queries)],
            }
        ]
    }
    file = tmp_path / "dashboard-queries.yml"
    file.write_text(yaml.safe_dump(rules))
    result = run(tool("promtool"), "check", "rules", file)
    assert result.returncode == 0, output_of(result)


def exported_metrics() -> set[str]:
    """Metrics the services create: the exporter's defaults plus every Counter/Gauge named in the kit and services."""
    names = set(EXPORTER_METRICS)
    sources = [*(REPO / "servicekit" / "servicekit").glob("*.py")]
    for service in SERVICES:
        sources += (REPO / service / "app").rglob("*.py")
    # Counter("x"), metrics.counter("x"), and thin helpers around them such as _count("x").
    pattern = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary|counter|gauge|_count|_gauge)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")
    # Counters declared as a `...COUNTERS = {"name": "documentation", ...}` dict (ServiceMetrics.declare_counters),
    # and metric names held in a `..._GAUGE = "name"` / `..._COUNTER = "name"` constant.
    declared = re.compile(r"^\w*COUNTERS = \{\n((?:    \"[^\"]+\": .*\n)+)\}", re.M)
    entry = re.compile(r"^    \"([a-zA-Z_:][a-zA-Z0-9_:]*)\":", re.M)
    constant = re.compile(r"^\w*_(?:GAUGE|COUNTER) = \"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", re.M)
    for source in sources:
        text = source.read_text()
        names |= set(pattern.findall(text)) | set(constant.findall(text))
        for block in declared.findall(text):
            names |= set(entry.findall(block))
    return names


def test_metric_name_extraction_sees_through_promql():
    expr = 'histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{job=~"x|y", le!="1"}[5m]))) / on (job) group_left b_total > bool 1'
    assert metric_names(expr) == {"a_bucket", "b_total"}


def test_every_metric_in_dashboards_and_alerts_is_one_the_services_export():
    exported = exported_metrics()
    used = {}
    for name, title, expr in dashboard_queries():
        for metric in metric_names(_as_plain_promql(expr)):
            used.setdefault(metric, []).append(f"{name}: {title}")
    for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            for metric in metric_names(rule["expr"]):
                used.setdefault(metric, []).append(f"alerts.yml: {rule['alert']}")
    missing = {metric: where for metric, where in used.items() if metric not in exported}
    assert not missing, f"metrics no service exports: {missing}"


def test_dashboards_cover_rates_latency_errors_bookings_outbox_and_lag():
    exprs = " ".join(expr for _, _, expr in dashboard_queries())
    for needed in ("flask_http_request_total", "histogram_quantile(0.95", 'status=~"5..', "reservations_created_total",
                   "reservation_conflicts_total", "outbox_pending_events", "consumer_lag_messages",
                   "reservations_released_total", "reservation_checkins_total", "rooms_utilization_percent",
                   "waitlist_joins_total", "waitlist_bookings_total", "waitlist_expiries_total"):  # fmt: skip
        assert needed in exprs, needed


def test_dashboards_use_only_provisioned_datasources_and_have_unique_ids():
    provisioned = load_yaml(MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml")["datasources"]
    uids = {(d["type"], d["uid"]) for d in provisioned}
    seen_uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] not in seen_uids
        seen_uids.add(dashboard["uid"])
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert (panel["datasource"]["type"], panel["datasource"]["uid"]) in uids, panel["title"]
    provider = load_yaml(MONITORING / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")["providers"][0]
    compose = load_yaml(REPO / "docker-compose.yml")
    assert f"./monitoring/grafana/dashboards:{provider['options']['path']}:ro" in compose["services"]["grafana"]["volumes"]


def test_loki_config_has_storage_schema_and_retention():
    config = load_yaml(MONITORING / "loki" / "loki.yaml")
    assert config["schema_config"]["configs"][0]["store"] == "tsdb"
    assert config["compactor"]["retention_enabled"] is True
    assert config["limits_config"]["retention_period"]
    assert config["server"]["http_listen_port"] == 3100


def test_fluent_bit_parses_json_logs_and_labels_each_line_with_its_service():
    config = load_yaml(MONITORING / "fluent-bit" / "fluent-bit.yaml")
    parsers = {p["name"] for p in config["parsers"]}
    pipeline = config["pipeline"]
    forward = next(i for i in pipeline["inputs"] if i["name"] == "forward")
    assert forward["port"] == 24224
    parser_filter = next(f for f in pipeline["filters"] if f["name"] == "parser")
    assert parser_filter["parser"] in parsers and parser_filter["key_name"] == "log"
    loki = next(o for o in pipeline["outputs"] if o["name"] == "loki")
    assert "service=$service" in loki["labels"] and loki["host"] == "loki"
    compose = load_yaml(REPO / "docker-compose.yml")
    assert compose["x-logging"]["options"]["fluentd-address"].endswith(":24224")
    cloudwatch = load_yaml(MONITORING / "fluent-bit" / "cloudwatch-output.yaml")["outputs"][0]
    assert cloudwatch["name"] == "cloudwatch_logs" and cloudwatch["log_group_name"]


@pytest.mark.parametrize("path", sorted(Path(MONITORING).rglob("*.y*ml")), ids=lambda p: str(p.relative_to(MONITORING)))
def test_monitoring_yaml_parses(path):
    assert yaml.safe_load(path.read_text())
