"""Conditional requests (RFC 9110 §13): strong ETags of a representation, `If-None-Match` → 304 on
reads, `If-Match` → 412 on writes.

The `If-Match` comparison is the caller's to place: call `require_match` inside the transaction,
after the row is loaded `FOR UPDATE`, so that no other writer can slip between the check and the
write.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Response, jsonify, request

from .problems import Problem

NOT_MODIFIED_HEADERS = ("Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Vary")


class PreconditionFailed(Problem):
    status, title, type = 412, "Precondition Failed", "/problems/precondition-failed"


def etag_for(representation: Any) -> str:
    """A strong ETag of a representation: the JSON document (a dict or list) or the bytes/str sent."""
    if isinstance(representation, str):
        data = representation.encode()
    elif isinstance(representation, bytes):
        data = representation
    else:
        data = json.dumps(representation, sort_keys=True, separators=(",", ":"), default=str).encode()
    return '"' + hashlib.sha256(data).hexdigest()[:40] + '"'


def _entity_tags(header: str) -> list[str]:
    """The entity tags of an `If-Match`/`If-None-Match` list (`*` stays `*`)."""
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def if_match_header() -> str | None:
    """The request's `If-Match`, or None when it has none (then a write goes ahead as usual)."""
    return request.headers.get("If-Match")


def require_match(if_match: str | None, current_etag: str) -> None:
    """Raise 412 unless `if_match` (None: no precondition) matches `current_etag` by strong comparison."""
    if if_match is None:
        return
    tags = _entity_tags(if_match)
    if "*" in tags or current_etag in tags:
        return
    raise PreconditionFailed(
        "The resource has changed since you read it (If-Match does not match its current ETag); "
        "nothing was changed. Read it again and retry."
    )


def none_match(current_etag: str) -> bool:
    """True when the request's `If-None-Match` names `current_etag` (weak comparison) or is `*`."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = _entity_tags(header)
    return "*" in tags or _opaque(current_etag) in {_opaque(tag) for tag in tags}


def conditional(response: Response, etag: str) -> Response:
    """Give `response` its ETag; answer 304 without a body when the client already holds that version."""
    response.headers["ETag"] = etag
    if request.method in ("GET", "HEAD") and response.status_code == 200 and none_match(etag):
        not_modified = Response(status=304)
        for name in NOT_MODIFIED_HEADERS:
            if name in response.headers:
                not_modified.headers[name] = response.headers[name]
        return not_modified
    return response


def json_with_etag(body: Any, status: int = 200) -> Response:
    """`jsonify(body)` with the strong ETag of `body`, honouring `If-None-Match` on reads."""
    response = jsonify(body)
    response.status_code = status
    return conditional(response, etag_for(body))


def body_with_etag(data: bytes, mimetype: str, *, headers: dict[str, str] | None = None) -> Response:
    """A non-JSON representation (e.g. `text/calendar`) with its ETag, honouring `If-None-Match`."""
    response = Response(data, mimetype=mimetype, headers=headers or {})
    return conditional(response, etag_for(data))
