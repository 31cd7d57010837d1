"""HTTP routes: parse, authorise, call the operation, serialise."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from servicekit.auth import current_principal, require_admin, require_auth
from servicekit.validation import with_body, with_query

from . import services
from .schemas import LoginRequest, RefreshRequest, RegisterRequest, UserListQuery, UserUpdate

auth = Blueprint("auth", __name__, url_prefix="/api/auth")
users = Blueprint("users", __name__, url_prefix="/api/users")


def _settings() -> services.TokenSettings:
    return current_app.extensions["user-service.tokens"]


def _client_address() -> str:
    """The caller's address: ProxyFix takes it from X-Forwarded-For only as far as TRUSTED_PROXY_HOPS allows."""
    return (request.remote_addr or "unknown")[:64]


@auth.post("/register")
@with_body(RegisterRequest)
def register(body: RegisterRequest):
    """Register a new account (role `user`).
    ---
    security: []
    responses:
      201: {description: The new user., schema: {$ref: '#/components/schemas/UserOut'}}
      409: {$ref: '#/components/responses/Conflict'}
      429: {$ref: '#/components/responses/TooManyRequests'}
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    user = services.register_user(body)
    return jsonify(user.to_dict()), 201, {"Location": f"/api/users/{user.id}"}


@auth.post("/login")
@with_body(LoginRequest)
def login(body: LoginRequest):
    """Exchange e-mail and password for tokens.
    ---
    security: []
    responses:
      200: {description: Access and refresh tokens., schema: {$ref: '#/components/schemas/Tokens'}}
      401:
        description: Wrong e-mail or password (the same answer for both).
      403:
        description: The account is deactivated.
      429:
        description: >-
          Too many failed logins for this account from this client address: wait Retry-After seconds
          (the delay doubles with each further failure; other addresses are not affected).
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    return jsonify(services.login(body.email, body.password, _settings(), _client_address()))


@auth.post("/refresh")
@with_body(RefreshRequest)
def refresh(body: RefreshRequest):
    """Rotate a refresh token: the one sent is dead afterwards; reusing it revokes the session.
    ---
    security: []
    responses:
      200: {description: New access and refresh tokens., schema: {$ref: '#/components/schemas/Tokens'}}
      401: {$ref: '#/components/responses/Unauthorized'}
    """
    return jsonify(services.refresh(body.refresh_token, _settings()))


@auth.post("/logout")
@with_body(RefreshRequest)
def logout(body: RefreshRequest):
    """End the session of a refresh token (its whole rotation family is revoked).
    ---
    security: []
    responses:
      204: {description: Logged out.}
      401: {$ref: '#/components/responses/Unauthorized'}
    """
    services.logout(body.refresh_token)
    return "", 204


@auth.get("/jwks")
def jwks():
    """The public keys that verify access tokens (JWKS, RFC 7517).
    ---
    security: []
    responses:
      200:
        description: The JWK set.
        schema:
          type: object
          properties:
            keys: {type: array, items: {type: object}}
    """
    response = jsonify(_settings().keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@users.get("")
@require_admin
@with_query(UserListQuery)
def list_users(query: UserListQuery):
    """List users (admins only), with booking statistics.
    ---
    responses:
      200: {description: A page of users., schema: {$ref: '#/components/schemas/UserPage'}}
    """
    return jsonify(services.list_users(query))


@users.get("/me")
@require_auth
def me():
    """The caller's own account.
    ---
    responses:
      200: {description: The user., schema: {$ref: '#/components/schemas/UserOut'}}
    """
    principal = current_principal()
    return jsonify(services.read_user(principal.user_id, principal, caller_row=g.get("caller_row")))


@users.get("/<int:user_id>")
@require_auth
def get_user(user_id: int):
    """One user: yourself, or anyone if you are an admin.
    ---
    responses:
      200: {description: The user (admins also see booking_stats)., schema: {$ref: '#/components/schemas/UserOut'}}
      403: {$ref: '#/components/responses/Forbidden'}
    """
    return jsonify(services.read_user(user_id, current_principal(), caller_row=g.get("caller_row")))


@users.put("/<int:user_id>")
@require_auth
@with_body(UserUpdate)
def update_user(user_id: int, body: UserUpdate):
    """Change an account. Self: full_name, password (with current_password). Admin: also role and is_active.
    ---
    responses:
      200: {description: The updated user., schema: {$ref: '#/components/schemas/UserOut'}}
      403:
        description: Not your account, or a non-admin sent role or is_active.
      409:
        description: An administrator tried to demote or deactivate themselves.
      429:
        description: Too many wrong current_password values from this client address (see Retry-After).
      503: {$ref: '#/components/responses/ServiceUnavailable'}
    """
    principal = current_principal()
    user = services.update_user(user_id, body, principal, _settings(), _client_address())
    return jsonify(services.user_body(user, principal))
