"""The command line every service's run.py hands over to: `migrate`, `serve`, `worker`, `dev`.

`serve` answers requests only (gunicorn); `worker` runs the background work (outbox relay,
consumers, mail, periodic jobs) in a process of its own, scaled independently."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from flask import Flask

from .config import ConfigError


def main(create_app: Callable[[], Flask], *, at_start: Callable[[Flask], None] | None = None) -> None:
    """`at_start` runs after migrating and before serving (e.g. ensuring the first admin)."""
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    try:
        app = create_app()  # validates the configuration before anything else happens
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    service = app.config["SERVICE"].service_name
    if command == "migrate":
        from flask_migrate import upgrade

        app.extensions["servicekit.dbguard"].enabled = False  # see migration_env: no request-path limits
        with app.app_context():
            upgrade()
            config = app.config["SERVICE"]
            if config.database_app_role:
                from .db import db
                from .dbroles import grant_application_role

                with db.engine.begin() as connection:
                    grant_application_role(connection, config.database_app_role, config.database_app_password)
                print(f"{service}: {config.database_app_role} may read and write the tables, nothing more")
            if at_start:
                at_start(app)
        print(f"{service}: database is at the latest migration")
    elif command == "serve":
        if at_start:
            with app.app_context():
                at_start(app)
        args = [sys.executable, "-m", "gunicorn", "-c", "python:servicekit.gunicorn_conf", "app:create_app()"]
        os.execv(sys.executable, args)
    elif command == "worker":
        from .worker import serve_background

        serve_background(app, app.config["SERVICE"].port)
    elif command == "dev":
        # One process for a quick local run: the background work runs as threads beside the requests.
        app.extensions["servicekit.background"].start()
        app.run(host="127.0.0.1", port=app.config["SERVICE"].port, threaded=True)
    else:
        print(f"usage: python run.py [migrate|serve|worker|dev]  (got {command!r})", file=sys.stderr)
        sys.exit(2)
