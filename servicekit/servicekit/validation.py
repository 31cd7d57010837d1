"""Request bodies and query strings validated by pydantic models at the boundary.

Malformed JSON or a body that is not an object is a 400; a well-formed body with
wrong, missing or unknown fields is a 422 naming each field.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from .problems import BadRequest, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def errors_from_pydantic(exc: ValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors(include_url=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "Unknown field."
        elif err["type"] == "missing":
            message = "This field is required."
        errors.append({"field": _field_name(err["loc"]), "message": message})
    return errors


def json_object_body() -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    raw = request.get_data(cache=True)
    if not raw:
        raise BadRequest("A JSON object body is required.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def parse_body(model: type[M]) -> M:
    """Validate the JSON object body against `model` (strict types, unknown fields refused)."""
    json_object_body()
    try:
        return model.model_validate_json(request.get_data(cache=True))
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None


def parse_query(model: type[M], *, multi: frozenset[str] = frozenset()) -> M:
    """Validate the query string against `model`; names in `multi` may repeat."""
    data: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        data[key] = values if key in multi else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None
