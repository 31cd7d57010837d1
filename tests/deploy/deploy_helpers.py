"""Helpers of the deployment checks: where the repository is and how to run a validator."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"user-service": 5001, "room-service": 5002, "reservation-service": 5003}
DATABASES = {"user-service": "users", "room-service": "rooms", "reservation-service": "reservations"}


def tool(name: str) -> str:
    """A validator's executable: beside this Python (the venv's bin) first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run tests/deploy/install-tools.sh and pip install -r requirements-deploy.txt")
    return found


def run(*args: str | os.PathLike, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 120):
    """Run a command and return the completed process (stdout and stderr as text, never raising)."""
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def run_on_file(tmp_path: Path, name: str, content: str, *command: str | os.PathLike):
    """Write `content` to the file `name` in tmp_path and run `command` with that file as its last argument:
    how each validator is shown to refuse a broken file (so that the checks it passes could fail)."""
    path = tmp_path / name
    path.write_text(content)
    return run(*command, path)


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def load_yaml_documents(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# PromQL helpers, shared with tests/e2e (which runs a real Prometheus against the live services).
DASHBOARDS = sorted((REPO / "monitoring" / "grafana" / "dashboards").glob("*.json"))
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def dashboard_queries(datasource_type: str = "prometheus"):
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == datasource_type:
                    yield path.name, panel["title"], target["expr"]


def _as_plain_promql(expr: str) -> str:
    """Grafana's variables replaced by what they stand for, so promtool can parse the query."""
    return expr.replace("$__rate_interval", "5m").replace("$service", "user-service|room-service|reservation-service")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or label names."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if not following.startswith("(") and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names
