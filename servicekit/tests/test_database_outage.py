"""A PostgreSQL that stops answering (every process SIGSTOPped, as in a network partition): the service
answers 503 problem+json with Retry-After within seconds, /readyz says the database is down, and it
resumes by itself once the database answers again."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import jsonify
from sqlalchemy import text

from servicekit.app import create_service_app
from servicekit.config import BaseConfig
from servicekit.db import db
from servicekit.openapi import build_spec

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class OutageConfig(BaseConfig):
    service_name: str = "outage-test"


def _process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@pytest.fixture
def own_postgres(tmp_path):
    """A PostgreSQL of this test's own (the shared one is not frozen under the other tests' feet)."""
    from devstack.components import Postgres
    from devstack.processes import free_port

    postgres = Postgres(tmp_path / "pg", free_port(), tmp_path / "logs")
    postgres.start()
    try:
        yield postgres
    finally:
        for pid in _process_tree(postgres.child.popen.pid):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        postgres.stop()


def test_a_frozen_database_gives_503_within_seconds_and_service_resumes_without_restart(own_postgres, infrastructure):
    config = OutageConfig.from_env(
        {
            "DATABASE_URL": own_postgres.url("postgres"),
            "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap,
            "LOG_LEVEL": "ERROR",
            "DB_STATEMENT_TIMEOUT_MS": "2000",
            "DB_CONNECT_TIMEOUT_SECONDS": "2",
        }
    )
    app = create_service_app("outage_test", config, openapi=build_spec("outage", "outage test", []))

    @app.get("/now")
    def now():
        return jsonify(now=str(db.session.execute(text("SELECT now()")).scalar_one()))

    client = app.test_client()
    assert client.get("/now").status_code == 200
    assert client.get("/readyz").get_json()["checks"]["database"] == "ok"

    frozen = _process_tree(own_postgres.child.popen.pid)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(3):  # the pooled connection, then fresh connection attempts
            started = time.monotonic()
            response = client.get("/now")
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.content_type == PROBLEM and int(response.headers["Retry-After"]) >= 1
            assert elapsed < 6, f"held the request {elapsed:.1f}s"
        started = time.monotonic()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["checks"]["database"] == "unreachable"
        assert time.monotonic() - started < 6
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)

    deadline = time.monotonic() + 20
    while client.get("/now").status_code != 200:
        assert time.monotonic() < deadline, "the service did not resume once the database answered again"
        time.sleep(0.2)
    assert client.get("/readyz").get_json()["checks"]["database"] == "ok"
