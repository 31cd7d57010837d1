"""The least-privilege database role a service runs as.

Migrations run as the database owner (`python run.py migrate` with the owner's DATABASE_URL); the
running service connects as DATABASE_APP_ROLE, which may only read and write the service's tables:
no DDL, no TRUNCATE, no ownership. After each migration the owner (re)creates that role if needed,
sets its password and grants it exactly that, so new tables are covered at once.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def grant_application_role(connection: Connection, role: str, password: str) -> None:
    """Create or update `role` (LOGIN, `password`) with DML rights on the public schema's tables only."""
    quoted = connection.dialect.identifier_preparer.quote(role)
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first()
    # Utility statements take no bind parameters: the password is a standard-conforming string literal.
    escaped = password.replace("'", "''")
    if exists is None:
        connection.execute(text(f"CREATE ROLE {quoted} LOGIN PASSWORD '{escaped}'"))
    else:
        connection.execute(text(f"ALTER ROLE {quoted} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{escaped}'"))
    database = connection.dialect.identifier_preparer.quote(connection.execute(text("SELECT current_database()")).scalar_one())
    connection.execute(text(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC"))
    connection.execute(text(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {quoted}"))
    connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {quoted}"))
    connection.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}"))
    connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}"))
    connection.execute(text(f"REVOKE ALL ON alembic_version FROM {quoted}"))
    connection.execute(text(f"GRANT SELECT ON alembic_version TO {quoted}"))
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}"))
