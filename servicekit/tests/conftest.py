"""A minimal service built on the kit, on a fresh real database, to test the kit itself."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from flasgger import swag_from
from flask import jsonify
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from servicekit.app import create_service_app
from servicekit.auth import init_auth, require_admin, require_auth
from servicekit.config import BaseConfig
from servicekit.db import db
from servicekit.openapi import build_spec
from servicekit.pagination import PageQuery
from servicekit.problems import Conflict
from servicekit.validation import parse_body, parse_query, with_body, with_optional_body, with_query

pytest_plugins = ["devstack.pytest_plugin", "servicekit.testing"]


@dataclass(frozen=True)
class KitTestConfig(BaseConfig):
    service_name: str = "kit-test"


class Widget(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=10)
    size: int = Field(ge=1)


class GadgetQuery(PageQuery):
    colour: list[str] = Field(default_factory=list, max_length=3, description="repeatable; any of them")


class AllowAll:
    def verify(self, token):
        from servicekit.auth import Principal

        # "<user id>" or "<user id>@<iat>"
        user_id, _, issued_at = token.partition("@")
        return Principal(user_id=int(user_id), role="user", token_id="t", issued_at=float(issued_at or time.time()))


@pytest.fixture(scope="session")
def app(fresh_database, infrastructure):
    config = KitTestConfig.from_env(
        {"DATABASE_URL": fresh_database("kit"), "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap, "LOG_LEVEL": "WARNING"}
    )
    app = create_service_app(__name__, config, openapi=build_spec("kit-test", "kit test", [Widget]))
    init_auth(app, AllowAll())

    @app.post("/widgets")
    def create_widget():
        return jsonify(parse_body(Widget).model_dump()), 201

    @app.get("/widgets")
    def list_widgets():
        query = parse_query(PageQuery)
        return jsonify(page=query.page, per_page=query.per_page)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/conflict")
    def conflict():
        raise Conflict("taken", conflicts=[{"id": 1}])

    @app.get("/whoami")
    @require_auth
    def whoami():
        return jsonify(ok=True)

    # Documented by the kit from what they say (test_openapi_derivation.py).
    @app.get("/api/gadgets")
    @require_auth
    @with_query(GadgetQuery)
    def list_gadgets(query: GadgetQuery):
        """Gadgets.
        ---
        responses:
          200: {description: The gadgets' colours., schema: {type: array, items: {type: string}}}
        """
        return jsonify(query.colour)

    @app.put("/api/gadgets/<int:gadget_id>")
    @require_admin
    @with_body(Widget)
    def replace_gadget(gadget_id: int, body: Widget):
        """Replace a gadget.
        ---
        parameters:
          - {$ref: '#/components/parameters/IfMatch'}
        responses:
          200: {description: The gadget., schema: {$ref: '#/components/schemas/Widget'}}
          409: {description: Taken.}
        """
        return jsonify(body.model_dump())

    @app.post("/api/gadgets/<int:gadget_id>/polish")
    @require_auth
    @with_optional_body(Widget)
    def polish_gadget(gadget_id: int, body: Widget | None):
        """Polish a gadget, as it is or as a widget sent.
        ---
        responses:
          200: {description: What was polished.}
          429: {description: Polished too often; wait Retry-After seconds.}
        """
        return jsonify(polished=body.model_dump() if body else None)

    @app.get("/api/gadgets/catalogue")
    @swag_from({"security": [], "responses": {"200": {"description": "The catalogue.", "schema": {"type": "array"}}}})
    def gadget_catalogue():
        """The catalogue, for anyone.
        More words.
        """
        return jsonify([])

    @app.get("/api/gadgets/catalogue.yaml")
    def gadget_catalogue_yaml():
        """The catalogue as YAML.
        ---
        security: []
        responses:
          200: {description: YAML., content: {application/yaml: {schema: {type: string}}}}
        """
        return "", 200, {"Content-Type": "application/yaml"}

    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(autouse=True)
def _clean(app):
    yield
    with app.app_context():
        db.session.execute(text("TRUNCATE outbox_events, processed_events, parked_events, revoked_users"))
        db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()
