"""room-service: rooms and their equipment."""

from __future__ import annotations

from flask import Flask

from config import RoomServiceConfig
from servicekit.app import create_service_app
from servicekit.auth import JwksKeySource, TokenVerifier, init_auth
from servicekit.metrics import metrics_of
from servicekit.openapi import build_spec

from . import kafka_consumer, routes, services
from .schemas import SCHEMAS


def create_app(config: RoomServiceConfig | None = None) -> Flask:
    config = config or RoomServiceConfig.from_env()
    spec = build_spec("room-service", "Meeting rooms and their equipment.", SCHEMAS)
    app = create_service_app(__name__, config, openapi=spec, topics=(services.TOPIC, *kafka_consumer.OWNERS))
    verifier = TokenVerifier(
        JwksKeySource(config.jwks_url), issuer=config.jwt_issuer, audience=config.jwt_audience, algorithms=config.jwt_algorithms
    )
    init_auth(app, verifier)
    app.extensions["room-service.rooms_gauge"] = metrics_of(app).gauge(
        "rooms_total", "Rooms by state (refreshed on every change)", ("state",)
    )
    app.register_blueprint(routes.rooms)
    app.register_blueprint(routes.internal)
    app.extensions["servicekit.background"].add_worker(kafka_consumer.make_consumer)
    return app
