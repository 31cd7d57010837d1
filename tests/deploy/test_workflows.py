"""GitHub Actions workflows: actionlint-clean (shellcheck on every run: step), valid against the workflow schema."""

from __future__ import annotations

import pytest
from deploy_helpers import REPO, SERVICES, load_yaml, output_of, run, run_on_file, tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def test_the_three_workflows_exist():
    assert [w.name for w in WORKFLOWS] == ["build.yml", "deploy.yml", "test.yml"]


def test_workflows_are_actionlint_clean_with_shellcheck():
    result = run(tool("actionlint"), "-no-color", "-oneline", "-shellcheck", tool("shellcheck"), "-pyflakes", "", *WORKFLOWS)
    assert result.returncode == 0, output_of(result)


def test_actionlint_rejects_script_injection_and_unknown_inputs(tmp_path):
    injection = (
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
        "      - uses: actions/checkout@v5\n        with: {fetch-dept: 0}\n"
    )
    result = run_on_file(
        tmp_path, "bad.yml", injection, tool("actionlint"), "-no-color", "-oneline", "-shellcheck", "", "-pyflakes", ""
    )
    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout and '"fetch-dept" is not defined' in result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflow_is_valid_against_the_github_workflow_schema(workflow):
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", workflow)
    assert result.returncode == 0, output_of(result)


def _on(workflow):
    # PyYAML reads the bare key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def test_test_workflow_runs_make_test_with_coverage_and_sonar_on_pushes_and_pull_requests():
    workflow = load_yaml(REPO / ".github" / "workflows" / "test.yml")
    assert {"push", "pull_request"} <= set(_on(workflow))
    steps = workflow["jobs"]["test"]["steps"]
    make_test = next(s for s in steps if s.get("run") == "make test")
    assert "--cov" in make_test["env"]["PYTEST_ADDOPTS"]
    assert any(s.get("uses", "").startswith("SonarSource/sonarqube-scan-action@") for s in steps)
    assert any("install-tools.sh" in s.get("run", "") for s in steps)


def test_build_workflow_pushes_each_service_image_to_ghcr_with_cache_on_main_and_tags():
    workflow = load_yaml(REPO / ".github" / "workflows" / "build.yml")
    assert _on(workflow)["push"] == {"branches": ["main"], "tags": ["v*.*.*"]}
    job = workflow["jobs"]["image"]
    assert job["strategy"]["matrix"]["service"] == list(SERVICES)
    assert workflow["permissions"]["packages"] == "write"
    build = next(s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["context"] == "." and build["with"]["push"] is True
    assert build["with"]["file"] == "${{ matrix.service }}/Dockerfile"
    assert "type=gha" in build["with"]["cache-from"] and "type=gha" in build["with"]["cache-to"]
    for service in SERVICES:
        assert (REPO / service / "Dockerfile").exists()


def test_deploy_workflow_goes_to_staging_then_to_production_behind_an_environment():
    workflow = load_yaml(REPO / ".github" / "workflows" / "deploy.yml")
    staging, production = workflow["jobs"]["staging"], workflow["jobs"]["production"]
    assert staging["environment"]["name"] == "staging"
    assert production["environment"]["name"] == "production" and production["needs"] == "staging"
    scripts = [s.get("run", "") for job in (staging, production) for s in job["steps"]]
    assert sum("helm upgrade --install" in s for s in scripts) == 2
    assert any("values-production.yaml" in s for s in scripts)
    assert (REPO / workflow["env"]["CHART"] / "Chart.yaml").exists()
    assert (REPO / workflow["env"]["CHART"] / "values-production.yaml").exists()


def test_sonar_properties_name_existing_sources_and_the_coverage_reports_make_test_writes():
    properties = dict(
        line.split("=", 1)
        for line in (REPO / "sonar-project.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for key in ("sonar.projectKey", "sonar.organization", "sonar.sources", "sonar.tests", "sonar.python.coverage.reportPaths"):
        assert properties.get(key), key
    for folder in properties["sonar.sources"].split(","):
        assert (REPO / folder).is_dir(), folder
    for report in properties["sonar.python.coverage.reportPaths"].split(","):
        assert (REPO / report).parent.is_dir() and report.endswith("/coverage.xml")
