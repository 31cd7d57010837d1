"""OpenAPI 3 documents served by flasgger; request/response schemas come from the pydantic models."""

from __future__ import annotations

import re
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
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "rule": {
                        "type": "string",
                        "description": "The rule refused, where one is named (e.g. `booking_policy.open_hours`).",
                    },
                },
            },
        },
    },
}


READINESS_SCHEMA = {
    "type": "object",
    "description": "/readyz: `ok` when every check is, else `unavailable`.",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {
            "type": "object",
            "properties": {
                "database": {"type": "string", "enum": ["ok", "unreachable"]},
                "broker": {"type": "string", "enum": ["ok", "unreachable"]},
            },
        },
    },
}


class ProblemDocument(BaseModel):
    """The RFC 9457 members every problem document has: the base of a service's documented problem types,
    which add their own members (and may narrow `type` to a Literal)."""

    type: str
    title: str
    status: int
    detail: str


def _problem_response(description: str, headers: dict | None = None) -> dict:
    response = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 1}}}


STANDARD_RESPONSES = {
    "BadRequest": _problem_response("Malformed JSON, or a body that is not an object."),
    "Unauthorized": _problem_response("Missing, invalid or expired access token."),
    "Forbidden": _problem_response("Authenticated but not allowed."),
    "NotFound": _problem_response("No such resource."),
    "Conflict": _problem_response("Uniqueness or booking conflict."),
    "ValidationFailed": _problem_response("Invalid fields: wrong type, out of range, unknown or missing."),
    "TooManyRequests": _problem_response("Too many requests; see Retry-After.", RETRY_AFTER),
    "ServiceUnavailable": _problem_response(
        "A dependency is unavailable, or the request waited too long to be served (REQUEST_DEADLINE_SECONDS) and"
        " was not carried out; retry later (see Retry-After).",
        RETRY_AFTER,
    ),
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


# The OpenAPI 3.0 spelling of JSON Schema's {"type": "null"}.
NULL_ONLY = {"type": "object", "nullable": True, "enum": [None]}


def to_openapi30(schema):
    """pydantic emits JSON Schema 2020-12; OpenAPI 3.0 (what the bundled Swagger UI renders) says
    `nullable: true` beside a type instead of a null type (`NULL_ONLY` in a union), and `enum` instead of
    `const`."""
    if isinstance(schema, list):
        return [to_openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: to_openapi30(value) for key, value in schema.items()}
    options = schema.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1 and "type" in rest[0] and "$ref" not in rest[0]:
            schema.update(rest[0])
            schema["nullable"] = True
        else:
            # `nullable` counts only beside a `type` in the same schema (OpenAPI 3.0.3), so a reference (or a
            # union) that may be null is an anyOf with a schema that is null alone.
            schema["anyOf"] = [*rest, NULL_ONLY]
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


def build_spec(
    title: str,
    description: str,
    models: Iterable[type[BaseModel]],
    *,
    responses: dict | None = None,
    schemas: dict | None = None,
) -> dict:
    """The service's OpenAPI template: its models' schemas, the kit's standard answers and parameters, and
    what several of the service's operations share: `responses` (`#/components/responses/<name>`) and
    `schemas` written as JSON Schema (e.g. an anyOf of models; `#/components/schemas/<name>`)."""
    schemas = {"Problem": PROBLEM_SCHEMA, "Readiness": READINESS_SCHEMA, **schemas_of(models), **(schemas or {})}
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas,
            "responses": {**STANDARD_RESPONSES, **(responses or {})},
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
_RULE_ARGUMENT = re.compile(r"<(?:([^<>:]*):)?([^<>]*)>")
_PATH_SCHEMAS = {"int": {"type": "integer"}, "string": {"type": "string"}, None: {"type": "string"}}


ETAG_HEADER = {
    "description": "The entity tag of this version, for If-None-Match (304 while current) and If-Match.",
    "schema": {"type": "string"},
}


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def query_parameters(model: type[BaseModel]) -> tuple[list[dict], dict[str, dict]]:
    """The OpenAPI query parameters a query model accepts (and the schemas they reference): the
    documentation is the model that `parse_query` validates with, so the two cannot drift."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    definitions = {name: to_openapi30(definition) for name, definition in schema.pop("$defs", {}).items()}
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema.get("properties", {}).items():
        field = to_openapi30(field)
        field.pop("title", None)
        if field.get("default", 0) is None:  # an absent parameter; a query string cannot say null
            del field["default"]
            field.pop("nullable", None)
            if NULL_ONLY in field.get("anyOf", ()):
                field["anyOf"] = [option for option in field["anyOf"] if option != NULL_ONLY]
                if len(field["anyOf"]) == 1:
                    field.update(field.pop("anyOf")[0])
        parameter = {"name": name, "in": "query", "required": name in required}
        description = field.pop("description", None)
        if description:
            parameter["description"] = description
        if field.get("type") == "array":
            parameter.update(style="form", explode=True)
        parameter["schema"] = field
        parameters.append(parameter)
    return parameters, definitions


def _expand_short_form(status: int, answer: dict) -> None:
    """Swagger 2's short form of an answer, `schema:` beside `description:`, means JSON (problem+json for an
    error); an error answer with no content is a problem document; a 429 or 503 carries `Retry-After`."""
    if "$ref" in answer:
        return
    if status in (429, 503):
        answer.setdefault("headers", RETRY_AFTER)
    if "content" in answer:
        return
    media = "application/problem+json" if status >= 400 else "application/json"
    if "schema" in answer:
        answer["content"] = {media: {"schema": answer.pop("schema")}}
    elif status >= 400:
        answer["content"] = {media: {"schema": _ref("schemas", "Problem")}}


def _document(operation: dict, path: str, rule, view, components: dict) -> None:
    """Fill in what the route itself says, so docstrings hold only what is particular to an operation
    (answers may use the short form, see `_expand_short_form`):
    the tag (the blueprint's name), path parameters (from the URL rule), query parameters (from the query model), the request body
    (from the body model), and the answers that follow from them: 400/422 for a body, 422 for a query,
    401 unless the operation is public, 403 for admin-only ones, 404 for a path naming a resource,
    304/412 for If-None-Match/If-Match, the Idempotency-Key header of an `idempotent` view, and the ETag header of a conditional operation's answer.
    An answer written in the docstring wins."""
    blueprint, dot, _ = rule.endpoint.partition(".")
    if dot:
        operation.setdefault("tags", [blueprint])
    summary, _, more = operation.get("summary", "").partition("\n")
    if more and not operation.get("description"):  # a docstring without YAML: its first line is the summary
        operation.update(summary=summary, description=more.strip())
    parameters = operation.setdefault("parameters", [])
    named = {(parameter.get("in"), parameter.get("name")) for parameter in parameters}
    named |= {parameter["$ref"] for parameter in parameters if "$ref" in parameter}
    for converter, name in reversed(_RULE_ARGUMENT.findall(rule.rule)):
        if ("path", name) not in named:
            schema = dict(_PATH_SCHEMAS.get(converter or None, {"type": "string"}))
            parameters.insert(0, {"name": name, "in": "path", "required": True, "schema": schema})
    if getattr(view, "idempotent", False) and "#/components/parameters/IdempotencyKey" not in named:
        parameters.append(_ref("parameters", "IdempotencyKey"))
    query_model = getattr(view, "query_model", None)
    if query_model is not None:
        documented, definitions = query_parameters(query_model)
        components.setdefault("schemas", {}).update(definitions)
        parameters.extend(p for p in documented if ("query", p["name"]) not in named)
    body_model = getattr(view, "body_model", None)
    if body_model is not None and "requestBody" not in operation:
        operation["requestBody"] = {
            "required": not getattr(view, "body_optional", False),
            "content": {"application/json": {"schema": _ref("schemas", body_model.__name__)}},
        }
    if not parameters:
        del operation["parameters"]
    responses = operation.setdefault("responses", {})
    for status, answer in responses.items():
        _expand_short_form(int(status), answer)
    implied = {}
    if "requestBody" in operation:
        implied.update({"400": "BadRequest", "422": "ValidationFailed"})
    if query_model is not None:
        implied["422"] = "ValidationFailed"
    if operation.get("security", True) != []:
        implied["401"] = "Unauthorized"
    if getattr(view, "admin_only", False):
        implied["403"] = "Forbidden"
    if "{" in path:
        implied["404"] = "NotFound"
    references = {parameter.get("$ref", "") for parameter in parameters}
    if "#/components/parameters/IfNoneMatch" in references:
        implied["304"] = "NotModified"
    if "#/components/parameters/IfMatch" in references:
        implied["412"] = "PreconditionFailed"
    if {"#/components/parameters/IfNoneMatch", "#/components/parameters/IfMatch"} & references:
        for status, answer in responses.items():
            if str(status).startswith("2") and "content" in answer:
                answer.setdefault("headers", {}).setdefault("ETag", ETAG_HEADER)
    for status, name in implied.items():
        if status not in responses and int(status) not in responses:
            responses[status] = _ref("responses", name)
    for status, answer in ANSWERS_OF_EVERY_OPERATION.items():
        responses.setdefault(status, answer)


def openapi_path(rule) -> str:
    return _RULE_ARGUMENT.sub(lambda match: "{" + match.group(2) + "}", rule.rule)


class _Swagger(Swagger):
    def get_apispecs(self, endpoint: str = "apispec_1") -> dict:
        cached = endpoint in self.apispecs
        spec = super().get_apispecs(endpoint)
        if cached and not self.app.debug:
            return spec
        rules = {(openapi_path(rule), method.lower()): rule for rule in self.app.url_map.iter_rules() for method in rule.methods}
        for path, path_item in spec.get("paths", {}).items():
            for method, operation in path_item.items():
                rule = rules.get((path, method))
                if method in _METHODS and isinstance(operation, dict) and rule is not None:
                    view = self.app.view_functions[rule.endpoint]
                    _document(operation, path, rule, view, spec.setdefault("components", {}))
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
