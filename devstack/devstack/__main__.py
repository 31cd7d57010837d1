"""`python -m devstack up` runs the platform (make dev); `python -m devstack test` runs every test suite (make test)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .components import REPO, available_services
from .processes import StartError
from .stack import Ports, Stack


class _Stop(Exception):
    pass


def _raise_stop(_signum, _frame):
    raise _Stop()


def _say(message: str) -> None:
    print(message, flush=True)


def up() -> int:
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    started = time.monotonic()
    stack = Stack()
    specs = available_services()
    try:
        _say("make dev: starting PostgreSQL, the Kafka-compatible broker and the SMTP sink ...")
        stack.start_infrastructure([spec.database for spec in specs])
        _say(f"make dev: starting {', '.join(s.name for s in specs)} (migrations first) ...")
        stack.start_services(specs)
        _say("make dev: starting the NGINX gateway ...")
        stack.start_gateway()
        _print_banner(stack, time.monotonic() - started)
        while True:
            for component in stack.started:
                for child in (component.child, getattr(component, "worker", None)):
                    if child is not None and not child.running():
                        raise StartError(
                            f"{child.name} stopped unexpectedly (code {child.popen.returncode}); "
                            f"see {child.log_path}: {child.last_line()}"
                        )
            time.sleep(1)
    except StartError as exc:
        _say(f"make dev: {exc}")
        code = 1
    except (_Stop, KeyboardInterrupt):
        _say("\nmake dev: stopping ...")
        code = 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stack.stop()
    _say("make dev: everything stopped.")
    return code


def _print_banner(stack: Stack, seconds: float) -> None:
    email, password, generated = stack.admin or ("", "", False)
    services = "\n".join(
        f"    {name:<20} http://localhost:{s.port}   (/healthz /readyz /metrics /apidocs/; its worker: :{s.worker_port})"
        for name, s in stack.services.items()
    )
    admin_note = "generated and kept in .devstack/admin.json" if generated else "from ADMIN_EMAIL/ADMIN_PASSWORD"
    _say(
        f"""
  Meeting-room platform is up ({seconds:.1f}s).

  Gateway (use this)     http://localhost:{stack.ports.gateway}/api/...
  API docs (Swagger UI)  http://localhost:{stack.ports.gateway}/docs/
{services}
  Kafka-compatible broker {stack.bootstrap}   (topics user-events, room-events, reservation-events)
  SMTP sink               localhost:{stack.ports.smtp}  -> every message is kept in .devstack/mail/*.eml
  PostgreSQL              {", ".join(stack.libpq_url(database) for database in stack.database_urls)}
  Logs                    .devstack/logs/

  Admin: {email} / {password}   ({admin_note})

  Try it:
    curl -s -X POST localhost:{stack.ports.gateway}/api/auth/login -H 'Content-Type: application/json' \\
         -d '{{"email": "{email}", "password": "{password}"}}'

  Press Ctrl-C to stop everything (data stays in .devstack/ for the next run).
"""
    )


SUITES = [
    ("devstack", REPO / "devstack"),
    ("servicekit", REPO / "servicekit"),
    ("user-service", REPO / "user-service"),
    ("room-service", REPO / "room-service"),
    ("reservation-service", REPO / "reservation-service"),
    ("gateway-e2e", REPO / "tests" / "e2e"),
    ("deploy", REPO / "tests" / "deploy"),
]


def test(extra_args: list[str]) -> int:
    """Start PostgreSQL, the broker and the SMTP sink once, then run every suite against them."""
    signal.signal(signal.SIGTERM, _raise_stop)
    state = Path(tempfile.mkdtemp(prefix="devstack-test-"))
    stack = Stack(state=state, ports=Ports.random(), fast=True)
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_suites: list[str] = []
    try:
        _say("make test: starting PostgreSQL, the Kafka-compatible broker and the SMTP sink ...")
        stack.start_infrastructure([])
        env = dict(os.environ)
        env.update(
            TEST_POSTGRES_ADMIN_URL=stack.postgres.url("postgres", "postgresql")
            if stack.postgres
            else os.environ.get("TEST_POSTGRES_ADMIN_URL", ""),
            KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
            TEST_SMTP_PORT=str(stack.ports.smtp),
            TEST_MAIL_DIR=str(state / "mail"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        wanted = {n for n in os.environ.get("SUITES", "").split(",") if n}
        for name, directory in SUITES:
            if wanted and name not in wanted:
                continue
            tests_dir = directory / "tests" if (directory / "tests").is_dir() else directory
            if not tests_dir.is_dir() or not any(tests_dir.rglob("test_*.py")):
                continue
            report = state / f"{name}.xml"
            _say(f"\n===== {name} =====")
            stack.fresh_broker()
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    str(tests_dir),
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={report}",
                    *extra_args,
                ],
                cwd=directory if (directory / "tests").is_dir() else REPO,
                env=env,
            )
            counts = _junit_counts(report)
            for key in totals:
                totals[key] += counts[key]
            if result.returncode not in (0,) or counts["failed"]:
                failed_suites.append(name)
    except StartError as exc:
        _say(f"make test: {exc}")
        return 2
    except _Stop:
        return 130
    finally:
        stack.stop()
    _say("\n===== all suites =====")
    if failed_suites:
        _say(f"failed suites: {', '.join(failed_suites)}")
    _say(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 1 if failed_suites or totals["passed"] == 0 else 0


def _junit_counts(report: Path) -> dict[str, int]:
    if not report.exists():
        return {"passed": 0, "failed": 1, "skipped": 0}
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return {"passed": tests - failed - skipped, "failed": failed, "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole platform locally (make dev)")
    run_tests = sub.add_parser("test", help="run every test suite on real parts (make test)")
    run_tests.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to each pytest run")
    args = parser.parse_args()
    if args.command == "up":
        return up()
    return test(args.pytest_args)


if __name__ == "__main__":
    sys.exit(main())
