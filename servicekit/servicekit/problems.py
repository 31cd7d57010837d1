"""Errors with meaning, rendered as RFC 9457 problem documents in one place."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_document(status: int, title: str, detail: str, type_: str = "about:blank") -> dict[str, Any]:
    """The RFC 9457 members every problem document has (also for answers written outside Flask: gunicorn's)."""
    return {"type": type_, "title": title, "status": status, "detail": detail}


class Problem(Exception):
    """An error a client can be told about. Subclasses fix status, title and type."""

    status = 500
    title = "Internal Server Error"
    type = "about:blank"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {**problem_document(self.status, self.title, self.detail, self.type), **self.extra}


class BadRequest(Problem):
    status, title = 400, "Bad Request"


class Unauthorized(Problem):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str | None = None, **extra: Any):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="meeting-rooms"'}, **extra)


class Forbidden(Problem):
    status, title = 403, "Forbidden"


class NotFound(Problem):
    status, title = 404, "Not Found"


class Conflict(Problem):
    status, title, type = 409, "Conflict", "/problems/conflict"


class ValidationFailed(Problem):
    status, title, type = 422, "Validation Failed", "/problems/validation"

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None):
        super().__init__(detail or "The request contains invalid fields.", errors=errors)

    @classmethod
    def single(cls, field: str, message: str) -> ValidationFailed:
        return cls([{"field": field, "message": message}], detail=f"{field}: {message}")


class TooManyRequests(Problem):
    status, title = 429, "Too Many Requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **extra: Any):
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))}, **extra)


class ServiceUnavailable(Problem):
    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **extra: Any):
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **extra)


def problem_response(problem: Problem) -> Response:
    response = Response(json.dumps(problem.to_dict()), status=problem.status, mimetype=PROBLEM_JSON)
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def _from_http_exception(exc: HTTPException) -> Problem:
    problem = Problem(exc.description)
    problem.status = exc.code or 500
    problem.title = exc.name
    headers = dict(exc.get_headers()) if exc.code == 405 else {}
    if "Allow" in headers:
        problem.headers["Allow"] = headers["Allow"]
    return problem


def register_error_handlers(app: Flask) -> None:
    """Every error leaves the service as problem+json; internals are logged, never sent."""

    @app.errorhandler(Problem)
    def _problem(exc: Problem):
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return problem_response(_from_http_exception(exc))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(exc: Exception):
        log.error("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
        return problem_response(ServiceUnavailable("The database is unavailable; try again shortly."))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return problem_response(Problem("An unexpected error occurred; it has been logged."))
