"""Dockerfiles and .dockerignore: hadolint-clean, and only what an image needs goes into the build."""

from __future__ import annotations

import re

import pytest
from deploy_helpers import REPO, SERVICES, output_of, run, run_on_file, tool

DOCKERFILES = [REPO / service / "Dockerfile" for service in SERVICES]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=list(SERVICES))
def test_service_dockerfile_is_hadolint_clean(dockerfile):
    result = run(tool("hadolint"), "--no-color", "--failure-threshold", "style", dockerfile)
    assert result.returncode == 0, output_of(result)


def test_hadolint_rejects_a_careless_dockerfile(tmp_path):
    careless = "FROM python:latest\nRUN pip install flask\nWORKDIR app\n"
    result = run_on_file(tmp_path, "Dockerfile", careless, tool("hadolint"), "--no-color", "--failure-threshold", "style")
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3000" in result.stdout


def _instructions(dockerfile):
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            yield word.upper(), rest.strip()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=list(SERVICES))
def test_service_image_is_multi_stage_non_root_with_healthcheck_and_serve_command(dockerfile):
    service = dockerfile.parent.name
    steps = list(_instructions(dockerfile))
    words = [word for word, _ in steps]
    assert words.count("FROM") >= 2, "multi-stage build"
    bases = [args for word, args in steps if word == "FROM"]
    assert all(" AS " in b.upper() for b in bases)
    python_image = next(args for word, args in steps if word == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", python_image), "slim Python base pinned to a patch version"
    user = [args for word, args in steps if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "runs as a non-root user"
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "COPY"), "USER after the last COPY"
    healthcheck = next(args for word, args in steps if word == "HEALTHCHECK")
    assert "/healthz" in healthcheck and "curl" not in healthcheck
    assert next(args for word, args in steps if word == "CMD") == '["python", "run.py", "serve"]'
    port = str(SERVICES[service])
    assert f"EXPOSE {port}" in [f"{w} {a}" for w, a in steps] and f"PORT={port}" in dockerfile.read_text()
    copies = " ".join(args for word, args in steps if word == "COPY")
    assert f"{service}/requirements.txt" in copies and "servicekit/" in copies and f"{service}/ /app/" in copies


def _dockerignore_patterns():
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            body = line.lstrip("!").strip("/")
            regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
            patterns.append((negated, re.compile(regex + "(/.*)?$")))
    return patterns


def _sent_to_builder(relative_path: str) -> bool:
    """Docker's rule: the last matching pattern decides; a pattern matching a parent folder matches its files."""
    included = True
    for negated, pattern in _dockerignore_patterns():
        if pattern.match(relative_path):
            included = negated
    return included


@pytest.mark.parametrize("service", list(SERVICES))
def test_dockerignore_sends_what_the_image_copies_and_leaves_out_tests_and_local_state(service):
    for needed in ["constraints.txt", "servicekit/pyproject.toml", "servicekit/servicekit/app.py", f"{service}/requirements.txt"]:
        assert _sent_to_builder(needed), needed
    for path in (REPO / service).rglob("*"):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and "/tests/" not in relative and "__pycache__" not in relative and path.name != "Dockerfile":
            assert _sent_to_builder(relative), relative
    for unwanted in [
        f"{service}/tests/test_x.py",
        "servicekit/tests/test_x.py",
        ".devstack/pg/PG_VERSION",
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "secrets/jwt-signing.pem",
        f"{service}/app/__pycache__/x.pyc",
        "backups/users-1.dump",
    ]:
        assert not _sent_to_builder(unwanted), unwanted
