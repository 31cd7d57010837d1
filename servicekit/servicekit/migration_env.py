"""The Alembic environment every service's `migrations/env.py` runs (Flask-Migrate, online or offline)."""

from __future__ import annotations

from alembic import context
from flask import current_app


def run_migrations() -> None:
    migrate = current_app.extensions["migrate"]
    metadata = migrate.db.metadata
    if context.is_offline_mode():
        context.configure(url=str(migrate.db.engine.url), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    with migrate.db.engine.connect() as connection:
        # No request-path limits while migrating: building an index on a large table takes what it takes.
        connection.exec_driver_sql("SET statement_timeout = 0")
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata, **migrate.configure_args)
            with context.begin_transaction():
                context.run_migrations()
        finally:  # the connection goes back to a pool that serves requests (tests migrate in-process)
            connection.rollback()
            connection.exec_driver_sql("RESET statement_timeout")
            connection.commit()
