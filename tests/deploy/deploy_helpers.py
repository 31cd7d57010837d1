"""Helpers of the deployment checks: where the repository is and how to run a validator."""

from __future__ import annotations

import os
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


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def load_yaml_documents(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
