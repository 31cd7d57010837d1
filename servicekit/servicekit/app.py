"""`create_service_app`: the plumbing every service's `create_app` starts from."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid

import orjson
from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_migrate import Migrate
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from .config import BaseConfig
from .db import db
from .dbguard import engine_options, guard_engine
from .deadline import init_request_deadline
from .kafka import broker_reachable
from .logs import configure_logging, request_id_var
from .metrics import ServiceMetrics
from .openapi import init_openapi
from .problems import register_error_handlers
from .worker import Background

log = logging.getLogger("servicekit.access")

MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON answers written by orjson (compact, keys in the order built, UTF-8): several times faster
    than the standard library on a page of 20 bookings. What orjson cannot write (an integer beyond 64 bits, a
    `Decimal`) falls back to Flask's own provider, so the answer is never a 500 for it. Request bodies are still
    read by `servicekit.validation` with the standard library (its depth and NUL rules)."""

    sort_keys = False

    def _encoded(self, obj) -> bytes:
        try:
            return orjson.dumps(obj, default=self.default, option=orjson.OPT_NON_STR_KEYS)
        except (orjson.JSONEncodeError, TypeError):
            return super().dumps(obj).encode()

    def dumps(self, obj, **kwargs) -> str:
        if kwargs:  # an explicit option (indent, ...) asks for the standard library's behaviour
            return super().dumps(obj, **kwargs)
        return self._encoded(obj).decode()

    def response(self, *args, **kwargs) -> Response:
        body = self._encoded(self._prepare_response_obj(args, kwargs)) + b"\n"
        return self._app.response_class(body, mimetype=self.mimetype)


class DatabaseIdConverter(IntegerConverter):
    """`<int:...>` in paths: at most 18 digits, so an id beyond PostgreSQL's bigint matches no route
    (a 404) instead of reaching SQL."""

    regex = r"\d{1,18}"


def create_service_app(import_name: str, config: BaseConfig, *, openapi: dict, topics: tuple[str, ...] = ()) -> Flask:
    """A Flask app with config, JSON logs, request ids, problem+json, metrics, health, database and docs.
    `topics`: the Kafka topics the service publishes to or consumes (their metrics are exported at 0 from the start)."""
    configure_logging(config.service_name, config.log_level)
    app = Flask(import_name, static_folder=None)
    app.json = FastJSONProvider(app)
    app.url_map.converters["int"] = DatabaseIdConverter
    app.config.update(
        SERVICE=config,
        SQLALCHEMY_DATABASE_URI=config.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(
            config.db_connect_timeout, config.db_statement_timeout_ms, config.db_pool_timeout
        ),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    )
    if config.trusted_proxies:
        # x_host: URLs a service hands out (calendar feeds) name the host and port the client used.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=config.trusted_proxies, x_proto=config.trusted_proxies, x_host=config.trusted_proxies
        )
    db.init_app(app)
    with app.app_context():
        app.extensions["servicekit.dbguard"] = guard_engine(db.engine, deadline=config.db_statement_timeout_ms / 1000 + 1)
    Migrate(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    register_error_handlers(app)
    _init_request_ids(app)
    init_request_deadline(app, config.request_deadline_seconds)
    app.extensions["servicekit.metrics"] = ServiceMetrics(app, config.service_name, topics)
    _init_health(app)
    init_openapi(app, openapi)
    app.extensions["servicekit.background"] = Background(app)
    return app


def _init_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()
        request_id_var.set(g.request_id)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
        if request.path not in ("/healthz", "/readyz", "/metrics") and log.isEnabledFor(logging.INFO):
            elapsed_ms = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed_ms, 2),
                },
            )
        return response

    @app.after_request
    def _no_type_without_a_body(response: Response) -> Response:
        # Flask labels an empty answer text/html; a 204 has no body to describe.
        if response.status_code == 204:
            response.headers.pop("Content-Type", None)
        return response

    @app.teardown_request
    def _forget_request_id(_exc):
        request_id_var.set(None)


def _init_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz():
        """Liveness: the process answers.
        ---
        tags: [health]
        security: []
        responses:
          200: {description: The process is up.}
        """
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        """Readiness: the database and the broker are reachable.
        ---
        tags: [health]
        security: []
        responses:
          200: {description: Ready., content: {application/json: {schema: {$ref: '#/components/schemas/Readiness'}}}}
          503:
            description: The database or the broker is unreachable.
            content: {application/json: {schema: {$ref: '#/components/schemas/Readiness'}}}
        """
        checks = {"database": "ok", "broker": "ok"}
        try:
            db.session.execute(text("SELECT 1"))
        except Exception:
            checks["database"] = "unreachable"
        service = app.config["SERVICE"]
        if not broker_reachable(service.kafka_bootstrap_servers, security=service.kafka_security()):
            checks["broker"] = "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503
