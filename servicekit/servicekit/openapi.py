"""OpenAPI 3 documents served by flasgger; request/response schemas come from the pydantic models."""

from __future__ import annotations

from collections.abc import Iterable

from flasgger import Swagger
from flask import Flask
from pydantic import BaseModel

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Present on 422: one entry per invalid field.",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def _problem_response(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


STANDARD_RESPONSES = {
    "BadRequest": _problem_response("Malformed JSON, or a body that is not an object."),
    "Unauthorized": _problem_response("Missing, invalid or expired access token."),
    "Forbidden": _problem_response("Authenticated but not allowed."),
    "NotFound": _problem_response("No such resource."),
    "Conflict": _problem_response("Uniqueness or booking conflict."),
    "ValidationFailed": _problem_response("Invalid fields: wrong type, out of range, unknown or missing."),
    "TooManyRequests": _problem_response("Too many requests; see Retry-After."),
    "ServiceUnavailable": _problem_response("A dependency is unavailable; retry later (see Retry-After)."),
    "NotModified": {
        "description": "If-None-Match named the current ETag: you already hold this version (no body).",
        "headers": {"ETag": {"description": "The current entity tag.", "schema": {"type": "string"}}},
    },
    "PreconditionFailed": _problem_response(
        "If-Match does not match the current ETag: it changed since you read it; nothing changed."
    ),
}

# Request headers shared by services, referenced as '#/components/parameters/IfMatch' (servicekit.conditional)
# and '#/components/parameters/IdempotencyKey'.
STANDARD_PARAMETERS = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Retrying with the same key and body returns the first answer (with `Idempotent-Replayed: true`) "
        "and creates nothing new; the same key with another body is 422; while the first request with the key is "
        "still running, 409. Keys are per user and kept for 24 hours.",
        "schema": {"type": "string", "maxLength": 255},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "Change only if the resource still has this ETag (from a GET); otherwise 412 and nothing changes.",
        "schema": {"type": "string"},
    },
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "The ETag you hold: 304 without a body while it is still current.",
        "schema": {"type": "string"},
    },
}


def to_openapi30(schema):
    """pydantic emits JSON Schema 2020-12; OpenAPI 3.0 (what the bundled Swagger UI renders) says
    `nullable: true` instead of a null type, and `enum` instead of `const`."""
    if isinstance(schema, list):
        return [to_openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: to_openapi30(value) for key, value in schema.items()}
    options = schema.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            schema.update(rest[0])
        elif len(rest) == 1:
            schema["allOf"] = rest
        else:
            schema["anyOf"] = rest
        schema["nullable"] = True
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    return schema


def schemas_of(models: Iterable[type[BaseModel]], mode: str = "validation") -> dict[str, dict]:
    """OpenAPI 3.0 component schemas for `models` (and the models they reference)."""
    components: dict[str, dict] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return {name: to_openapi30(schema) for name, schema in components.items()}


def build_spec(title: str, description: str, models: Iterable[type[BaseModel]]) -> dict:
    schemas = {"Problem": PROBLEM_SCHEMA, **schemas_of(models)}
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas,
            "responses": STANDARD_RESPONSES,
            "parameters": STANDARD_PARAMETERS,
        },
        "security": [{"bearerAuth": []}],
    }


_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
# What any operation may answer, whatever it does: the gateway's rate limits, and a database or peer away.
ANSWERS_OF_EVERY_OPERATION = {
    "429": {"$ref": "#/components/responses/TooManyRequests"},
    "503": {"$ref": "#/components/responses/ServiceUnavailable"},
}


class _Swagger(Swagger):
    def get_apispecs(self, endpoint: str = "apispec_1") -> dict:
        spec = super().get_apispecs(endpoint)
        for path_item in spec.get("paths", {}).values():
            for method, operation in path_item.items():
                if method in _METHODS and isinstance(operation, dict):
                    responses = operation.setdefault("responses", {})
                    for status, answer in ANSWERS_OF_EVERY_OPERATION.items():
                        responses.setdefault(status, answer)
        return spec


def _public(rule) -> bool:
    return rule.rule.startswith("/api/")


def init_openapi(app: Flask, template: dict) -> None:
    """Serve the public spec (the `/api/` paths the gateway routes; what /docs shows) at `/apispec.json`,
    the operator's spec (also `/internal/`, `/healthz`, `/readyz`) at `/apispec-all.json`, Swagger UI at `/apidocs/`."""
    app.config["SWAGGER"] = {"openapi": "3.0.3", "uiversion": 3, "title": template["info"]["title"]}
    _Swagger(
        app,
        template=template,
        config={
            "headers": [],
            "specs": [
                {
                    "endpoint": "apispec",
                    "route": "/apispec.json",
                    "rule_filter": _public,
                    "model_filter": lambda tag: True,
                },
                {
                    "endpoint": "apispec_all",
                    "route": "/apispec-all.json",
                    "rule_filter": lambda rule: True,
                    "model_filter": lambda tag: True,
                },
            ],
            "static_url_path": "/flasgger_static",
            "swagger_ui": True,
            "specs_route": "/apidocs/",
        },
    )
