"""helm/meeting-room-app: rendered by Helm's own engine (helm-python-sdk) for the default and the production
values, linted, checked against values.schema.json, and every object validated against the Kubernetes schemas."""

from __future__ import annotations

from urllib.parse import urlsplit

import helm_python as helm
import pytest
import yaml
from deploy_helpers import DATABASES, REPO, SERVICES, output_of, run, run_on_file, tool
from test_compose import service_variables

CHART = REPO / "helm" / "meeting-room-app"
KUBERNETES_VERSION = "1.33.0"
# prometheus-operator's ServiceMonitor is a CRD: no schema in kubernetes-validate, checked by hand below.
CRD_KINDS = {"ServiceMonitor", "PodMonitor"}
VALUES = {
    "default": {},
    "production": yaml.safe_load((CHART / "values-production.yaml").read_text()),
}


def render(values: dict) -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="meeting-rooms", namespace="meeting-rooms", is_install=True)
    objects = []
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


@pytest.fixture(scope="module", params=list(VALUES))
def rendered(request):
    return request.param, render(VALUES[request.param])


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_chart_lints_without_errors_or_warnings():
    for values in VALUES.values():
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] > 1] == [], report["messages"]  # 1 is INFO


@pytest.mark.parametrize("name", list(VALUES))
def test_values_files_are_valid_against_values_schema(name):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(VALUES[name])


@pytest.mark.parametrize(
    "bad",
    [
        {"services": {"user": {"replicas": 0}}},
        {"kafka": {"internal": False}},
        {"postgresql": {"databases": {"rooms": {"internal": False, "external": {"host": "", "port": 5432, "user": "r"}}}}},
        {"ingress": {"enabeld": True}},
        {"config": {"publicBaseUrl": "rooms.example.com"}},
    ],
    ids=["zero-replicas", "external-kafka-without-servers", "external-db-without-host", "misspelt-key", "relative-public-url"],
)
def test_values_schema_rejects_invalid_values(bad):
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema(bad)


def test_every_rendered_object_is_valid_for_kubernetes_strict(rendered, tmp_path):
    name, objects = rendered
    files = []
    for i, obj in enumerate(o for o in objects if o["kind"] not in CRD_KINDS):
        path = tmp_path / f"{i:03d}-{obj['kind']}.yaml"
        path.write_text(yaml.safe_dump(obj))
        files.append(path)
    assert len(files) >= 10
    result = run(tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSION, "--quiet", *files)
    assert result.returncode == 0, output_of(result)


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path):
    unknown_field = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i}]\n"
    )
    validate = (tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSION)
    result = run_on_file(tmp_path, "bad.yaml", unknown_field, *validate)
    assert result.returncode != 0 and "replica" in output_of(result)


def test_services_scale_horizontally_and_stateful_parts_do_not(rendered):
    name, objects = rendered
    every = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind(objects, "Deployment")}
    deployments = {component: d for component, d in every.items() if component in SERVICES}
    assert set(every) == set(SERVICES) | {f"{service}-worker" for service in SERVICES}
    hpa_targets = {
        h["spec"]["scaleTargetRef"]["kind"] + "/" + h["spec"]["scaleTargetRef"]["name"]
        for h in by_kind(objects, "HorizontalPodAutoscaler")
    }
    for statefulset in by_kind(objects, "StatefulSet"):
        assert statefulset["spec"]["replicas"] == 1
        assert "StatefulSet/" + statefulset["metadata"]["name"] not in hpa_targets
    assert all(t.startswith("Deployment/") for t in hpa_targets)
    if name == "production":
        assert len(hpa_targets) == 3 and len(by_kind(objects, "PodDisruptionBudget")) == 3
        assert by_kind(objects, "StatefulSet") == [], "production uses managed PostgreSQL and Kafka"
        for deployment in deployments.values():
            assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    else:
        assert len(by_kind(objects, "StatefulSet")) == 4  # three databases and Kafka
        pvcs = [t for s in by_kind(objects, "StatefulSet") for t in s["spec"]["volumeClaimTemplates"]]
        assert len(pvcs) == 4


def test_service_pods_are_non_root_read_only_probed_and_migrate_first(rendered):
    _, objects = rendered
    for deployment in by_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        if component.endswith("-worker"):
            continue  # test_each_service_has_a_worker_deployment
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["initContainers"][0]["command"] == ["python", "run.py", "migrate"]
        container = pod["containers"][0]
        for c in (container, pod["initContainers"][0]):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["resources"]["requests"] and c["resources"]["limits"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["ports"][0]["containerPort"] == SERVICES[component]
        assert container["image"].endswith(f"/{component}:0.1.0")


def test_service_environment_is_what_the_services_read(rendered):
    _, objects = rendered
    config = by_kind(objects, "ConfigMap")[0]["data"]
    for deployment in by_kind(objects, "Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"].removesuffix("-worker")
        reads, required = service_variables(component)
        env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]} | set(config)
        assert required <= env, required - env
        assert env - {"DB_PASSWORD"} <= reads, env - reads
        pod = deployment["spec"]["template"]["spec"]
        url = next(e["value"] for e in pod["containers"][0]["env"] if e["name"] == "DATABASE_URL")
        assert url.startswith("postgresql+psycopg://") and f"/{DATABASES[component]}" in url and "$(DB_PASSWORD)" in url
        # The service (and its worker) runs as <owner>_app; its migration, as the owner, grants that role DML rights.
        assert urlsplit(url).username.endswith("_app")
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"].endswith("-worker"):
            assert "initContainers" not in pod  # the request Deployment migrates; the worker never does
            continue
        migrate_env = {e["name"]: e for e in pod["initContainers"][0]["env"]}
        owner = urlsplit(migrate_env["DATABASE_URL"]["value"]).username
        assert urlsplit(url).username == migrate_env["DATABASE_APP_ROLE"]["value"] == f"{owner}_app"


def public_base_urls(objects) -> set:
    """PUBLIC_BASE_URL of reservation-service's request and worker Deployments (None: not set)."""
    urls = set()
    for deployment in by_kind(objects, "Deployment"):
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"].startswith("reservation-service"):
            env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
            urls.add(env.get("PUBLIC_BASE_URL"))
    return urls


def test_feed_urls_are_on_the_ingress_host_or_the_public_base_url_given():
    production = VALUES["production"]
    assert public_base_urls(render(production)) == {f"https://{production['ingress']['host']}"}
    assert public_base_urls(render({"ingress": {"enabled": True, "tls": {"enabled": False}}})) == {
        "http://meeting-rooms.example.com"
    }
    given = {**production, "config": {**production.get("config", {}), "publicBaseUrl": "https://book.example.org"}}
    assert public_base_urls(render(given)) == {"https://book.example.org"}
    assert public_base_urls(render({})) == {None}  # no ingress: the host each client called


def test_each_internal_database_is_reachable_only_from_its_service():
    objects = render({})
    policies = {p["metadata"]["name"]: p for p in by_kind(objects, "NetworkPolicy")}
    for service, database in DATABASES.items():
        policy = policies[f"meeting-rooms-meeting-room-app-postgres-{database}"]
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == f"postgres-{database}"
        (rule,) = policy["spec"]["ingress"]
        sources = {source["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for source in rule["from"]}
        assert sources == {service, f"{service}-worker"}  # its request pods and its worker pods
    assert "meeting-rooms-meeting-room-app-kafka" in policies


def test_production_routes_the_api_through_a_tls_ingress_and_scrapes_with_service_monitors():
    objects = render(VALUES["production"])
    ingresses = by_kind(objects, "Ingress")
    assert all(ingress["spec"]["tls"][0]["secretName"] for ingress in ingresses)
    paths = {
        p["path"]: p["backend"]["service"]["name"] for ingress in ingresses for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert paths["/api/rooms"].endswith("room-service") and paths["/api/reservations"].endswith("reservation-service")
    assert paths["/api/calendar"].endswith("reservation-service")
    assert paths["/api/blackouts"].endswith("reservation-service") and paths["/api/availability"].endswith("reservation-service")
    monitors = by_kind(objects, "ServiceMonitor")
    assert len(monitors) == 3
    pod_monitors = by_kind(objects, "PodMonitor")  # the worker processes, which no Service fronts
    assert len(pod_monitors) == 3 and all(m["spec"]["jobLabel"] == "meeting-rooms/service" for m in pod_monitors)
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"  # job = service name, as alerts expect
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert by_kind(objects, "Secret") == [], "production reads an existing Secret"


def test_generated_secret_holds_every_key_the_templates_read():
    objects = render({})
    (secret,) = by_kind(objects, "Secret")
    assert set(secret["data"]) == {
        "JWT_PRIVATE_KEY",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
        "USERS_DB_PASSWORD",
        "ROOMS_DB_PASSWORD",
        "RESERVATIONS_DB_PASSWORD",
        "USERS_DB_APP_PASSWORD",
        "ROOMS_DB_APP_PASSWORD",
        "RESERVATIONS_DB_APP_PASSWORD",
    }
    assert all(secret["data"].values())


def test_each_service_has_a_worker_deployment(rendered):
    """run.py worker: its own Deployment with its own replica count, probed, non-root, read-only, never behind a Service."""
    _, objects = rendered
    workers = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in by_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"].endswith("-worker")
    }
    assert set(workers) == {f"{service}-worker" for service in SERVICES}
    selectors = [s["spec"]["selector"] for s in by_kind(objects, "Service")]
    for component, deployment in workers.items():
        assert deployment["spec"]["replicas"] >= 1
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["meeting-rooms/service"] == component.removesuffix("-worker")
        (container,) = pod["spec"]["containers"]
        assert container["command"] == ["python", "run.py", "worker"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert not any(all(pod["metadata"]["labels"].get(k) == v for k, v in sel.items()) for sel in selectors)


def test_the_ingress_rate_limits_auth_per_client_and_reservation_writes_per_token():
    objects = render(VALUES["production"])
    ingresses = {i["spec"]["rules"][0]["http"]["paths"][0]["path"]: i for i in by_kind(objects, "Ingress")}
    assert set(ingresses) == {"/api/users", "/api/auth", "/api/reservations"}
    auth = ingresses["/api/auth"]["metadata"]["annotations"]
    assert auth["nginx.ingress.kubernetes.io/limit-rps"] == "5"  # the auth limit wins over the general one
    assert [p["path"] for p in ingresses["/api/auth"]["spec"]["rules"][0]["http"]["paths"]] == ["/api/auth"]
    writes = ingresses["/api/reservations"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"]
    assert "limit_req zone=meeting-rooms-writes" in writes


def test_services_accept_only_the_ingress_controller_prometheus_and_the_peers_they_need():
    objects = render({})
    policies = {
        p["metadata"]["name"].removeprefix("meeting-rooms-meeting-room-app-"): p for p in by_kind(objects, "NetworkPolicy")
    }
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "meeting-rooms"} and "ingress" not in deny

    def peers(service):
        (rule,) = policies[service]["spec"]["ingress"]
        return {
            s["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
            for s in rule["from"]
            if "namespaceSelector" not in s
        } - {None}

    assert peers("user-service") == {"room-service", "reservation-service"}
    assert peers("room-service") == {"reservation-service"}
    assert peers("reservation-service") == set()
    for service in ("user-service", "room-service", "reservation-service"):
        (rule,) = policies[service]["spec"]["ingress"]
        outside = [s for s in rule["from"] if "namespaceSelector" in s]
        assert {s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in outside} == {"ingress-nginx", "prometheus"}
        assert [p["port"] for p in rule["ports"]] == [SERVICES[service]]


def test_the_user_service_memory_limit_covers_the_measured_login_peak():
    objects = render({})
    deployment = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].endswith("user-service"))
    limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and int(limit[:-2]) >= 172 * 1.3  # bench/login_bench.py peak, README
