"""Request bodies and query strings validated by pydantic models at the boundary.

Malformed JSON or a body that is not an object is a 400; a well-formed body with
wrong, missing or unknown fields is a 422 naming each field.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar, get_args

from flask import request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError, core_schema

from .problems import BadRequest, ValidationFailed

M = TypeVar("M", bound=BaseModel)


# C0 and C1 controls plus the Unicode line and paragraph separators: anything that breaks a line
# (an e-mail Subject, a log line, a CSV cell) or is invisible in a one-line field.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SINGLE_LINE_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$"


def refuse_control_characters(value: str) -> str:
    """Pydantic validator of single-line text: no control characters (line breaks, tabs, escapes)."""
    match = _CONTROL.search(value)
    if match:
        name = unicodedata.name(match.group(), f"U+{ord(match.group()):04X}")
        raise PydanticCustomError(
            "control_characters", "Must be a single line without control characters (found {character}).", {"character": name}
        )
    return value


class SingleLine:
    """`Annotated[str, ..., SINGLE_LINE]`: refuses control characters (422 naming the field) and
    documents it as a `pattern` in the OpenAPI schema. For titles, names and other one-line fields."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(refuse_control_characters, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        json_schema = handler(schema)
        json_schema["pattern"] = SINGLE_LINE_PATTERN
        return json_schema


SINGLE_LINE = SingleLine()

# A query parameter matched as a case-insensitive substring (with servicekit.db.like_substring).
Substring = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


class StrictModel(BaseModel):
    """A request body: strict types, unknown fields refused (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PartialUpdate(StrictModel):
    """A PUT body: any subset of the fields. A field sent as null is refused here ("Must not be null.",
    naming it) unless it is in NULLABLE, so services only see what they may apply."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        """Document what is accepted: every field optional, none nullable unless it is in NULLABLE (the
        `X | None = None` annotations only mean "may be left out")."""
        json_schema = handler(schema)
        resolved = handler.resolve_ref_schema(json_schema)
        for name, field in cls.model_fields.items():
            prop = resolved.get("properties", {}).get(field.alias or name)
            if prop is None or name in cls.NULLABLE:
                continue
            options = prop.pop("anyOf", None)
            if options is not None:
                rest = [option for option in options if option != {"type": "null"}]
                if len(rest) == 1:
                    prop.update(rest[0])
                else:
                    prop["anyOf"] = rest
            if prop.get("default", 0) is None:
                del prop["default"]
        return json_schema

    @classmethod
    def null_fields(cls, body: dict, prefix: str = "") -> list[str]:
        """The fields of `body` (nested partial updates included) sent as null that may not be.
        Checked by `parse_body` on the raw JSON: a pydantic model validator would switch the fields to
        Python-mode validation, where strict types refuse an ISO time given as a string."""
        found = []
        for name, value in body.items():
            field = cls.model_fields.get(name)
            if field is None:
                continue
            if value is None and name not in cls.NULLABLE:
                found.append(prefix + name)
            nested = [t for t in (field.annotation, *get_args(field.annotation)) if isinstance(t, type)]
            for kind in nested:
                if issubclass(kind, PartialUpdate) and isinstance(value, dict):
                    found += kind.null_fields(value, f"{prefix}{name}.")
        return found


def partial_update_of(
    model: type[BaseModel],
    name: str,
    doc: str,
    *,
    nullable: frozenset[str] = frozenset(),
    nested: dict[str, type[PartialUpdate]] | None = None,
) -> type[PartialUpdate]:
    """The PUT body of a resource whose create body is `model`: the same fields with the same rules, each
    optional. Sent as null, a field is refused unless it is in `nullable`; `nested` gives a field's partial
    update type (a nested object that is merged, not replaced). One schema source per resource: the update
    cannot drift from the create."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        annotation = (nested or {}).get(field_name)
        if annotation is None:
            annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[field_name] = (annotation | None, Field(None, description=info.description))
    update = create_model(name, __base__=PartialUpdate, __doc__=doc, **fields)
    update.NULLABLE = frozenset(nullable)
    return update


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


# Deeper than any body of ours (a room's booking_policy.open_hours.mon[0][0] is five levels) and well within
# what Python's json and pydantic's parser read (about 1,000 and 200 levels): a deeper body is refused as
# unreadable (400) before either is asked, instead of failing in them (a RecursionError was a 500).
MAX_JSON_DEPTH = 64


class _TooDeep(Exception):
    pass


def _nul_characters(body: Any) -> list[dict[str, str]]:
    """Fields holding U+0000, which PostgreSQL text cannot store (refused up front, not a 500). Walks the body
    without recursion, and raises _TooDeep beyond MAX_JSON_DEPTH levels."""
    found = []
    pending: list[tuple[Any, str, int]] = [(body, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                found.append({"field": path or "body", "message": "Must not contain NUL characters."})
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _TooDeep
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    found.append({"field": path or "body", "message": "Must not contain NUL characters."})
                pending.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        else:
            for index, item in enumerate(value):
                pending.append((item, f"{path}.{index}" if path else str(index), depth + 1))
    return sorted(found, key=lambda error: error["field"])


def json_object_body() -> dict[str, Any]:
    """The request's JSON body, which must be an object (and hold no NUL characters)."""
    raw = request.get_data(cache=True)
    if not raw:
        raise BadRequest("A JSON object body is required.")
    too_deep = BadRequest(f"The body nests more than {MAX_JSON_DEPTH} levels of arrays and objects.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    try:
        nul = _nul_characters(body)
    except _TooDeep:
        raise too_deep from None
    if nul:
        raise ValidationFailed(nul)
    return body


def parse_body(model: type[M]) -> M:
    """Validate the JSON object body against `model` (strict types, unknown fields refused)."""
    body = json_object_body()
    if issubclass(model, PartialUpdate):
        nulls = model.null_fields(body)
        if nulls:
            raise ValidationFailed([{"field": name, "message": "Must not be null."} for name in nulls])
    try:
        return model.model_validate_json(request.get_data(cache=True))
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None


def parse_optional_body(model: type[M]) -> M | None:
    """For a POST whose body may be left out: no body is None; a body sent is read like any other (malformed or
    not an object → 400, unknown or invalid fields → 422). `with_optional_body` uses it and documents it."""
    if not request.get_data(cache=True):
        return None
    return parse_body(model)


@functools.cache
def repeatable_parameters(model: type[BaseModel]) -> frozenset[str]:
    """The query parameters of `model` that may repeat (`?equipment=a&equipment=b`): its list fields."""
    properties = model.model_json_schema(by_alias=True).get("properties", {})
    return frozenset(
        name
        for name, field in properties.items()
        if field.get("type") == "array" or any(option.get("type") == "array" for option in field.get("anyOf", ()))
    )


def parse_query(model: type[M]) -> M:
    """Validate the query string against `model`; its list fields may repeat."""
    nul = [
        {"field": key, "message": "Must not contain NUL characters."}
        for key, value in request.args.items(multi=True)
        if "\x00" in key + value
    ]
    if nul:
        raise ValidationFailed(nul)
    multi = repeatable_parameters(model)
    data: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        data[key] = values if key in multi else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None


def _validated(argument: str, parse: Callable[[type[M]], M], model: type[M]) -> Callable[[Callable], Callable]:
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, **{argument: parse(model)}, **kwargs)

        setattr(wrapper, f"{argument}_model", model)  # what servicekit.openapi documents
        return wrapper

    return decorate


def with_body(model: type[BaseModel]) -> Callable[[Callable], Callable]:
    """The view gets the validated JSON body as `body`, and the OpenAPI spec documents it as the request
    body (with its 400 and 422). Put it below the access decorator: the caller is authenticated first."""
    return _validated("body", parse_body, model)


def with_optional_body(model: type[BaseModel]) -> Callable[[Callable], Callable]:
    """`with_body` for a body that may be left out (`body` is then None); the spec documents it as not required."""
    decorate = _validated("body", parse_optional_body, model)

    def optional(view: Callable) -> Callable:
        wrapper = decorate(view)
        wrapper.body_optional = True
        return wrapper

    return optional


def with_query(model: type[BaseModel]) -> Callable[[Callable], Callable]:
    """The view gets the validated query string as `query`, and the OpenAPI spec lists its parameters from
    the model: documentation and validation are one thing and cannot drift."""
    return _validated("query", parse_query, model)
