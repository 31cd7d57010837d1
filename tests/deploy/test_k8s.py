"""k8s/: raw manifests for those who do not use Helm, rendered from the chart (k8s/generate.py),
validated against the Kubernetes schemas, with secrets made from files that are never committed."""

from __future__ import annotations

import sys

import yaml
from deploy_helpers import REPO, output_of, run, tool

BASE = REPO / "k8s" / "base"
KUBERNETES_VERSION = "1.33.0"
sys.path.insert(0, str(REPO / "k8s"))

import generate  # noqa: E402  (k8s/generate.py)


def manifests() -> dict[str, dict]:
    return {
        path.name: yaml.safe_load(path.read_text()) for path in sorted(BASE.glob("*.yaml")) if path.name != "kustomization.yaml"
    }


def test_the_raw_manifests_are_exactly_what_the_chart_renders():
    expected = generate.render()
    committed = {path.name: path.read_text() for path in BASE.glob("*.yaml")}
    assert committed == expected, "k8s/base/ is out of date: run python k8s/generate.py"


def test_every_raw_manifest_is_valid_for_kubernetes_strict():
    files = sorted(path for path in BASE.glob("*.yaml") if path.name != "kustomization.yaml")
    assert len(files) >= 15
    result = run(tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSION, "--quiet", *files)
    assert result.returncode == 0, output_of(result)


def test_the_validator_rejects_a_broken_manifest(tmp_path):
    deployment = next(obj for obj in manifests().values() if obj["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "three"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    assert (
        run(tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSION, "--quiet", broken).returncode
        != 0
    )


def test_kustomization_lists_every_manifest_and_makes_the_secret_from_uncommitted_files():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(manifests())
    generator = kustomization["secretGenerator"][0]
    assert generator["name"] == "meeting-rooms-secrets" and generator["envs"] == ["secrets.env"]
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "k8s/base/secrets.env" in ignored and "k8s/base/jwt-signing.pem" in ignored
    assert not any(obj["kind"] == "Secret" for obj in manifests().values())


def test_every_secret_key_the_workloads_read_is_in_the_example():
    example = {
        line.split("=")[0]
        for line in (BASE / "secrets.env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    wanted = set()
    for obj in manifests().values():
        text = yaml.safe_dump(obj)
        for doc in yaml.safe_load_all(text):
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == "meeting-rooms-secrets"
                        wanted.add(ref["key"])
    assert wanted and wanted - {"JWT_PRIVATE_KEY"} <= example


def test_stateless_services_scale_and_stateful_parts_do_not():
    prefix = "meeting-rooms-meeting-room-app-"
    kinds = {
        obj["metadata"]["name"].removeprefix(prefix): obj["kind"]
        for obj in manifests().values()
        if obj["kind"] in ("Deployment", "StatefulSet")
    }
    assert {name for name, kind in kinds.items() if kind == "Deployment"} == {
        "user-service",
        "room-service",
        "reservation-service",
        "user-service-worker",
        "room-service-worker",
        "reservation-service-worker",
    }
    assert {name for name, kind in kinds.items() if kind == "StatefulSet"} == {
        "kafka",
        "postgres-users",
        "postgres-rooms",
        "postgres-reservations",
    }
