"""A real Prometheus (Debian's build, installed by tests/deploy/install-tools.sh) scrapes the running
services with the repository's alert rules: every service is up, every alert and dashboard query
evaluates, and every metric they name is one the live services really export."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from devstack.processes import free_port
from servicekit.testing import wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "deploy"))
from deploy_helpers import _as_plain_promql, dashboard_queries, metric_names, tool  # noqa: E402

ALERTS = REPO / "monitoring" / "prometheus" / "alerts.yml"
JOBS = ("user-service", "room-service", "reservation-service")


@pytest.fixture(scope="module")
def prometheus(platform, tmp_path_factory):
    state = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": job,
                # Each service is its request processes and its worker process, scraped as one job.
                "static_configs": [
                    {
                        "targets": [
                            f"127.0.0.1:{platform.ports.services[job]}",
                            f"127.0.0.1:{platform.services[job].worker_port}",
                        ]
                    }
                ],
            }
            for job in JOBS
        ],
    }
    (state / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(state / "prometheus.log", "wb")
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={state / 'prometheus.yml'}",
            f"--storage.tsdb.path={state / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{url}/-/ready") == 200, timeout=30, message="Prometheus to be ready")
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _get(url: str) -> int:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def query(url: str, expr: str) -> dict:
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]


def test_prometheus_scrapes_every_service(prometheus):
    def all_up():
        result = query(prometheus, "up")["result"]
        up = [r["metric"]["job"] for r in result if r["value"][1] == "1"]
        return all(up.count(job) == 2 for job in JOBS)  # request processes and worker

    wait_until(all_up, timeout=30, message="every service to be scraped")


def test_alert_rules_load_and_evaluate_against_the_live_services(prometheus):
    def loaded():
        groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(rule["health"] == "ok" for rule in rules) else None

    rules = wait_until(loaded, timeout=30, message="every alert rule to be evaluated without error")
    assert len(rules) == len([r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]])


def test_every_metric_in_dashboards_and_alerts_is_exported_by_a_live_service(prometheus, gateway):
    gateway.register_and_login()  # some traffic, so request metrics have samples
    used = {metric for _, _, expr in dashboard_queries() for metric in metric_names(_as_plain_promql(expr))}
    used |= {
        metric
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        for metric in metric_names(rule["expr"])
    }
    assert len(used) >= 8

    def known(metric: str) -> bool:
        family = metric.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        metadata = requests.get(f"{prometheus}/api/v1/metadata", params={"metric": family}, timeout=5).json()["data"]
        series = requests.get(f"{prometheus}/api/v1/series", params={"match[]": metric}, timeout=5).json()["data"]
        return bool(metadata or series or metric == "up")

    deadline = time.monotonic() + 20
    missing = used
    while missing and time.monotonic() < deadline:
        missing = {metric for metric in missing if not known(metric)}
        time.sleep(1)
    assert not missing, f"named in dashboards or alerts but exported by no running service: {sorted(missing)}"
    for _, _title, expr in dashboard_queries():
        query(prometheus, _as_plain_promql(expr))  # every dashboard query evaluates
