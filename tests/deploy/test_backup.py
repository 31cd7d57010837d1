"""backup.sh: shellcheck-clean, and a real round trip against PostgreSQL (back up, lose data, restore, same rows)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from deploy_helpers import REPO, output_of, run, run_on_file, tool

from devstack import components as devstack_components
from devstack.processes import free_port

BACKUP = REPO / "backup.sh"
# Every optional check except require-variable-braces (a matter of taste).
SHELLCHECK = [
    "--severity=style",
    "--enable=add-default-case,avoid-nullary-conditions,check-extra-masked-returns,check-set-e-suppressed,"
    "check-unassigned-uppercase,deprecate-which,quote-safe-variables,require-double-brackets",
]


def test_backup_script_is_shellcheck_clean():
    result = run(tool("shellcheck"), *SHELLCHECK, BACKUP)
    assert result.returncode == 0, output_of(result)


def test_shellcheck_rejects_a_careless_script(tmp_path):
    result = run_on_file(tmp_path, "bad.sh", "#!/bin/bash\nrm -rf $DIR/*\ncd $1\n", tool("shellcheck"), *SHELLCHECK)
    assert result.returncode != 0 and "SC2086" in result.stdout


def test_backup_script_prints_usage_and_rejects_unknown_arguments():
    help_text = run("bash", BACKUP, "--help")
    assert help_text.returncode == 0
    for word in ("--restore", "BACKUP_DIR", "BACKUP_RETENTION_DAYS", "PG_BIN", "USERS_DATABASE_URL", "PGHOST"):
        assert word in help_text.stdout
    wrong = run("bash", BACKUP, "--frobnicate")
    assert wrong.returncode != 0 and "unknown argument" in wrong.stderr


class Postgres:
    """devstack's PostgreSQL (the same as make test's), with psql at hand for the assertions."""

    def __init__(self, server: devstack_components.Postgres):
        self.server = server
        self.bin_dir = devstack_components.postgres_bin_dir()
        self.port = server.port

    def url(self, database: str, driver: str = "postgresql") -> str:
        return self.server.url(database, driver)

    def sql(self, database: str, statement: str) -> str:
        result = run(self.bin_dir / "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.url(database), "-c", statement)
        assert result.returncode == 0, output_of(result)
        return result.stdout.strip()


@pytest.fixture(scope="module")
def postgres():
    home = Path(tempfile.mkdtemp(prefix="backup-test-"))
    server = devstack_components.Postgres(home / "data", free_port(), home / "logs")
    server.start()
    try:
        yield Postgres(server)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def databases(postgres):
    """users and reservations, the latter with the btree_gist exclusion constraint the real schema uses."""
    for name in ("users", "reservations"):
        postgres.sql("postgres", f"CREATE DATABASE {name}")
    postgres.sql("users", "CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL)")
    postgres.sql("users", "INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g")
    postgres.sql(
        "reservations",
        "CREATE EXTENSION btree_gist; CREATE TABLE reservations (id serial PRIMARY KEY, room_id int NOT NULL, "
        "during tstzrange NOT NULL, EXCLUDE USING gist (room_id WITH =, during WITH &&))",
    )
    postgres.sql(
        "reservations",
        "INSERT INTO reservations (room_id, during) SELECT g % 5, tstzrange(now() + g * interval '1 hour', "
        "now() + (g + 1) * interval '1 hour') FROM generate_series(1, 200) g",
    )
    return postgres


def _backup_env(postgres, backup_dir: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        BACKUP_DIR=str(backup_dir),
        BACKUP_DATABASES="users reservations",
        USERS_DATABASE_URL=postgres.url("users", "postgresql+psycopg"),  # the services' SQLAlchemy form
        RESERVATIONS_DATABASE_URL=postgres.url("reservations"),
        PG_BIN=str(postgres.bin_dir),
    )
    env.update(extra)
    return env


def test_backup_then_restore_brings_back_the_same_rows(databases, tmp_path):
    before_users = databases.sql("users", "SELECT string_agg(id || email, ',' ORDER BY id) FROM users")
    before_bookings = databases.sql(
        "reservations", "SELECT string_agg(id || ':' || room_id || during, ',' ORDER BY id) FROM reservations"
    )

    backed_up = run("bash", BACKUP, env=_backup_env(databases, tmp_path))
    assert backed_up.returncode == 0, output_of(backed_up)
    dumps = {p.name.split("-")[0]: p for p in tmp_path.glob("*.dump")}
    assert set(dumps) == {"users", "reservations"}
    assert all(p.with_name(p.name + ".sha256").exists() for p in dumps.values())

    databases.sql("users", "DELETE FROM users WHERE id % 2 = 0; INSERT INTO users (email) VALUES ('intruder@example.com')")
    databases.sql("reservations", "DROP TABLE reservations")

    for dump in dumps.values():
        restored = run("bash", BACKUP, "--restore", dump, env=_backup_env(databases, tmp_path))
        assert restored.returncode == 0, output_of(restored)

    assert databases.sql("users", "SELECT string_agg(id || email, ',' ORDER BY id) FROM users") == before_users
    assert (
        databases.sql("reservations", "SELECT string_agg(id || ':' || room_id || during, ',' ORDER BY id) FROM reservations")
        == before_bookings
    )
    # The exclusion constraint came back with the data: an overlapping booking is still refused.
    clash = run(
        databases.bin_dir / "psql", "-X", "-d", databases.url("reservations"), "-v", "ON_ERROR_STOP=1", "-c",
        "INSERT INTO reservations (room_id, during) SELECT room_id, during FROM reservations LIMIT 1",
    )  # fmt: skip
    assert clash.returncode != 0 and "conflicting key value violates exclusion constraint" in clash.stderr


def test_backup_finds_pg_dump_on_path_and_uses_pg_environment_variables(databases, tmp_path):
    env = _backup_env(
        databases, tmp_path, BACKUP_DATABASES="users", PGHOST="127.0.0.1", PGPORT=str(databases.port), PGUSER="postgres"
    )
    del env["PG_BIN"], env["USERS_DATABASE_URL"]
    env["PATH"] = f"{databases.bin_dir}{os.pathsep}{env['PATH']}"
    result = run("bash", BACKUP, env=env)
    assert result.returncode == 0, output_of(result)
    assert len(list(tmp_path.glob("users-*.dump"))) == 1


def test_backups_older_than_the_retention_are_deleted_and_newer_ones_kept(databases, tmp_path):
    old, recent = tmp_path / "users-20000101T000000Z.dump", tmp_path / "users-20990101T000000Z.dump"
    for path in (old, recent, old.with_name(old.name + ".sha256")):
        path.write_text("x")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    result = run("bash", BACKUP, env=_backup_env(databases, tmp_path, BACKUP_DATABASES="users", BACKUP_RETENTION_DAYS="7"))
    assert result.returncode == 0, output_of(result)
    assert not old.exists() and not old.with_name(old.name + ".sha256").exists()
    assert recent.exists() and len(list(tmp_path.glob("users-*.dump"))) == 2


def test_restore_refuses_a_backup_that_does_not_match_its_checksum(databases, tmp_path):
    result = run("bash", BACKUP, env=_backup_env(databases, tmp_path, BACKUP_DATABASES="users"))
    assert result.returncode == 0, output_of(result)
    dump = next(tmp_path.glob("users-*.dump"))
    with dump.open("ab") as f:
        f.write(b"tampered")
    restored = run("bash", BACKUP, "--restore", dump, env=_backup_env(databases, tmp_path))
    assert restored.returncode != 0 and "checksum" in restored.stderr


def test_backup_fails_loudly_when_the_database_is_unreachable(tmp_path):
    env = dict(os.environ, BACKUP_DIR=str(tmp_path), BACKUP_DATABASES="users", PG_BIN=str(devstack_components.postgres_bin_dir()))
    env["USERS_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/users?connect_timeout=2"
    result = run("bash", BACKUP, env=env)
    assert result.returncode != 0 and "pg_dump of users failed" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_dumps_and_checksums_are_readable_by_their_owner_only(databases, tmp_path):
    backup_dir = tmp_path / "new-dir"
    result = run("bash", BACKUP, env=_backup_env(databases, backup_dir, BACKUP_DATABASES="users"))
    assert result.returncode == 0, output_of(result)
    written = list(backup_dir.iterdir())
    assert written and all(path.stat().st_mode & 0o077 == 0 for path in [backup_dir, *written]), [
        (path.name, oct(path.stat().st_mode)) for path in written
    ]


def test_the_database_password_never_appears_on_a_command_line(databases, tmp_path):
    """A stand-in pg_dump records its argument list and the password it got from the environment."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    record = tmp_path / "record"
    (fake_bin / "pg_dump").write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}.argv\nprintf "%s" "${{PGPASSWORD:-}}" > {record}.password\n'
        f'exec {databases.bin_dir}/pg_dump "$@"\n'
    )
    (fake_bin / "pg_dump").chmod(0o755)
    (fake_bin / "pg_restore").symlink_to(databases.bin_dir / "pg_restore")
    url = f"postgresql+psycopg://postgres:s3cr%40t-pw@127.0.0.1:{databases.port}/users?connect_timeout=5"
    env = _backup_env(databases, tmp_path / "out", BACKUP_DATABASES="users", USERS_DATABASE_URL=url, PG_BIN=str(fake_bin))
    result = run("bash", BACKUP, env=env)
    assert result.returncode == 0, output_of(result)
    argv = record.with_suffix(".argv").read_text()
    assert "s3cr" not in argv and "postgresql://" not in argv and "--dbname=users" in argv
    assert record.with_suffix(".password").read_text() == "s3cr@t-pw"  # percent-decoded, through the environment


def test_restore_refuses_a_backup_without_its_checksum(databases, tmp_path):
    result = run("bash", BACKUP, env=_backup_env(databases, tmp_path, BACKUP_DATABASES="users"))
    assert result.returncode == 0, output_of(result)
    dump = next(tmp_path.glob("users-*.dump"))
    dump.with_name(dump.name + ".sha256").unlink()
    restored = run("bash", BACKUP, "--restore", dump, env=_backup_env(databases, tmp_path))
    assert restored.returncode != 0 and "no checksum" in restored.stderr


def test_encrypted_backups_round_trip_and_hold_no_plain_data(databases, tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required for encrypted backups (apt-get install openssl)")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple")
    backup_dir = tmp_path / "encrypted"
    env = _backup_env(databases, backup_dir, BACKUP_DATABASES="users", BACKUP_PASSPHRASE_FILE=str(passphrase))
    before = databases.sql("users", "SELECT string_agg(id || email, ',' ORDER BY id) FROM users")
    result = run("bash", BACKUP, env=env)
    assert result.returncode == 0, output_of(result)
    encrypted = next(backup_dir.glob("users-*.dump.enc"))
    assert not list(backup_dir.glob("*.dump")) and b"@example.com" not in encrypted.read_bytes()
    assert encrypted.with_name(encrypted.name + ".sha256").exists()

    databases.sql("users", "DELETE FROM users WHERE id % 3 = 0")
    without_key = run("bash", BACKUP, "--restore", encrypted, env={k: v for k, v in env.items() if k != "BACKUP_PASSPHRASE_FILE"})
    assert without_key.returncode != 0 and "BACKUP_PASSPHRASE_FILE" in without_key.stderr
    restored = run("bash", BACKUP, "--restore", encrypted, "--database", "users", env=env)
    assert restored.returncode == 0, output_of(restored)
    assert databases.sql("users", "SELECT string_agg(id || email, ',' ORDER BY id) FROM users") == before
