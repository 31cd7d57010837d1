"""Every environment variable a service reads is listed in the README's configuration section."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from servicekit.config import BaseConfig

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("user-service", "room-service", "reservation-service")


def _config_class(service: str) -> type[BaseConfig]:
    spec = importlib.util.spec_from_file_location(f"{service.replace('-', '_')}_config", REPO / service / "config.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    (config,) = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseConfig) and value is not BaseConfig
    ]
    return config


def _readme_configuration() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Configuration")
    end = text.index("\n## ", start + 1)
    return text[start:end]


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_of_the_service_is_in_the_readme(service):
    section = _readme_configuration()
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", section))
    variables = [env.name for env in _config_class(service).documented_variables()]
    assert variables, "the config declares no variable: the check would pass on nothing"
    missing = sorted(set(variables) - listed)
    assert not missing, f"{service} reads {missing}, which README.md's Configuration section does not list"
