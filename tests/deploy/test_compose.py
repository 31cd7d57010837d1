"""docker-compose.yml: valid against the Compose specification, and consistent with the launcher and the services."""

from __future__ import annotations

import ast
import re
from urllib.parse import urlsplit

import pytest
from deploy_helpers import DATABASES, REPO, SERVICES, load_yaml, output_of, run, run_on_file, tool

COMPOSE = REPO / "docker-compose.yml"

# Read by gunicorn (servicekit/gunicorn_conf.py), not by the config classes.
GUNICORN_VARIABLES = {"WEB_CONCURRENCY", "GUNICORN_THREADS"}
# The launcher gives every service every URL; these are read by the kit but unused by the service.
LAUNCHER_ONLY = {"user-service": {"JWKS_URL"}}  # user-service verifies tokens with its own key ring


@pytest.fixture(scope="module")
def compose():
    return load_yaml(COMPOSE)


def test_compose_file_is_valid_against_the_compose_specification():
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, output_of(result)


def test_compose_validation_rejects_a_broken_compose_file(tmp_path):
    broken = "services:\n  web:\n    image: nginx\n    depends_on:\n      db:\n        condition: when_it_feels_like_it\n"
    result = run_on_file(
        tmp_path, "docker-compose.yml", broken, tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"
    )
    assert result.returncode != 0


def _env_fields(path):
    """Names of the environment variables a config class reads, and which are required (from env_field calls)."""
    names, required = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "env_field":
            name = node.args[0].value
            names.add(name)
            if any(k.arg == "required" and getattr(k.value, "value", False) for k in node.keywords):
                required.add(name)
    return names, required


def service_variables(service):
    """(every variable the service reads, the required ones) from the kit's BaseConfig and the service's config.py."""
    names, required = _env_fields(REPO / "servicekit" / "servicekit" / "config.py")
    own = REPO / service / "config.py"
    if own.exists():
        more, more_required = _env_fields(own)
        names |= more
        required |= more_required
    return names | GUNICORN_VARIABLES, required


def launcher():
    """(SERVICES of devstack as {name: (port, database)}, the variables devstack's service_env sets)."""
    tree = ast.parse((REPO / "devstack" / "devstack" / "components.py").read_text())
    specs = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ServiceSpec" and len(node.args) >= 3:
            name, port, database = (a.value for a in node.args[:3])
            specs[name] = (port, database)
    stack = ast.parse((REPO / "devstack" / "devstack" / "stack.py").read_text())
    function = next(n for n in ast.walk(stack) if isinstance(n, ast.FunctionDef) and n.name == "service_env")
    variables = {
        k.arg
        for n in ast.walk(function)
        if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "update"
        for k in n.keywords
        if k.arg
    }
    return specs, variables - {"PYTHONUNBUFFERED"}


def test_launcher_and_compose_agree_on_services_ports_and_databases(compose):
    specs, _ = launcher()
    assert specs == {name: (port, DATABASES[name]) for name, port in SERVICES.items()}
    for service, (port, database) in specs.items():
        env = compose["services"][service]["environment"]
        assert env["PORT"] == str(port)
        url = urlsplit(re.sub(r"\$\{[^}]*\}", "password", env["DATABASE_URL"]))
        assert url.scheme == "postgresql+psycopg" and url.path == f"/{database}" and url.port == 5432
        postgres = compose["services"][url.hostname]
        assert postgres["environment"]["POSTGRES_DB"] == database
        # The service runs as the least-privilege role its migration (run as the owner) grants.
        migrate = compose["services"][f"{service}-migrate"]
        owner_url = urlsplit(re.sub(r"\$\{[^}]*\}", "password", migrate["environment"]["DATABASE_URL"]))
        assert postgres["environment"]["POSTGRES_USER"] == owner_url.username != url.username
        assert migrate["environment"]["DATABASE_APP_ROLE"] == url.username
        assert migrate["command"] == ["python", "run.py", "migrate"]


@pytest.mark.parametrize("service", list(SERVICES))
def test_compose_sets_every_required_variable_and_only_variables_the_service_reads(compose, service):
    reads, required = service_variables(service)
    _, launcher_sets = launcher()
    env = set(compose["services"][service]["environment"])
    assert required <= env, f"required but not set: {required - env}"
    assert env <= reads, f"set but never read by {service}: {env - reads}"
    # Whatever the launcher gives a service that it reads, Compose gives it too.
    assert (launcher_sets & reads) - env - LAUNCHER_ONLY.get(service, set()) == set()


def test_service_urls_in_compose_point_at_compose_services_and_ports(compose):
    names = set(compose["services"])
    for service in SERVICES:
        for key, value in compose["services"][service]["environment"].items():
            # (PUBLIC_BASE_URL is the gateway's address as clients see it, not a peer's)
            if key.endswith("_URL") and key not in ("DATABASE_URL", "PUBLIC_BASE_URL") or key == "KAFKA_BOOTSTRAP_SERVERS":
                target = urlsplit(value if "://" in value else f"kafka://{value}")
                assert target.hostname in names, f"{service} {key} -> {target.hostname}"
                if target.hostname in SERVICES:
                    assert target.port == SERVICES[target.hostname]
    gateway = compose["services"]["gateway"]["environment"]
    for service, port in SERVICES.items():
        assert gateway[service.replace("-", "_").upper() + "_ADDR"] == f"{service}:{port}"


def test_gateway_fills_every_placeholder_of_nginx_conf(compose):
    lines = [line for line in (REPO / "nginx.conf").read_text().splitlines() if not line.lstrip().startswith("#")]
    placeholders = set(re.findall(r"\$\{([A-Z_]+)\}", "\n".join(lines)))
    assert placeholders, "nginx.conf has no ${...} placeholders any more: update this test and docker-compose.yml"
    gateway = compose["services"]["gateway"]
    assert placeholders <= set(gateway["environment"])
    assert "./nginx.conf:/etc/nginx/templates/nginx.conf.template:ro" in gateway["volumes"]
    assert gateway["environment"]["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"


def test_every_named_volume_is_declared_and_used(compose):
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "$")):
                used.add(source)
            else:
                path = source.replace("${JWT_SIGNING_KEY_FILE:-", "").rstrip("}")
                assert (REPO / path).exists(), f"bind mount of a missing file: {path}"
    assert used == set(compose["volumes"])


def test_services_wait_for_healthy_dependencies_and_migrations(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
    for service in SERVICES:
        depends = services[service]["depends_on"]
        assert depends[f"{service}-migrate"]["condition"] == "service_completed_successfully"
        assert depends["kafka-init"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(services[service]["healthcheck"]["test"])


def test_each_database_is_reachable_only_from_its_own_service(compose):
    services = compose["services"]
    for service, database in DATABASES.items():
        network = f"db-{database}"
        assert compose["networks"][network]["internal"] is True
        members = {name for name, s in services.items() if network in s.get("networks", [])}
        assert members <= {f"postgres-{database}", service, f"{service}-migrate", f"{service}-worker", "backup"}


def test_no_secret_is_in_compose_and_every_interpolated_variable_is_in_env_example(compose):
    text = COMPOSE.read_text()
    example = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    interpolated = set(re.findall(r"\$\{([A-Z_]+)[:?}-]", text))
    assert interpolated <= example, f"missing from .env.example: {interpolated - example}"
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET|KEY$", key):
                assert str(value).startswith("${"), f"{key} is written into docker-compose.yml"


def test_kafka_runs_in_kraft_mode_and_topics_are_created(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    script = compose["services"]["kafka-init"]["command"][0]
    for topic in ("user-events", "room-events", "reservation-events"):
        assert topic in script


def test_images_are_pinned_to_versions(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith((":latest", ":")), f"{name}: {image}"


@pytest.mark.parametrize("service", list(SERVICES))
def test_each_service_has_a_worker_process_beside_its_request_processes(compose, service):
    """run.py worker runs the background work with the service's image and settings, scaled on its own."""
    web, worker = compose["services"][service], compose["services"][f"{service}-worker"]
    assert worker["command"] == ["python", "run.py", "worker"]
    assert worker["image"] == web["image"] and worker["environment"] == web["environment"]
    assert "BACKGROUND_WORKERS" not in web["environment"]  # request processes serve only requests
    assert worker["depends_on"][f"{service}-migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(worker["healthcheck"]["test"])
