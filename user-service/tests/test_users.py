"""GET/PUT /api/users: object-level authorisation, no mass assignment, deactivation."""

from __future__ import annotations

import pytest
from conftest import unique_email

from app import services
from servicekit.db import db


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/api/users/me", "/api/users", "/api/users/1"])
def test_protected_endpoints_without_a_token_are_401_problem_json(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_garbage_token_is_401(client):
    assert client.get("/api/users/me", headers=bearer("not.a.jwt")).status_code == 401
    assert client.get("/api/users/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_me_returns_the_caller(client, accounts):
    user, headers = accounts.user_with_token()
    response = client.get("/api/users/me", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == user


def test_listing_users_is_for_admins_only(client, accounts):
    _, user_headers = accounts.user_with_token()
    assert client.get("/api/users", headers=user_headers).status_code == 403


def test_admin_lists_users_in_pages_with_booking_stats(client, accounts):
    _, headers = accounts.admin_with_token()
    for _ in range(3):
        accounts.register()
    response = client.get("/api/users?page=1&per_page=2", headers=headers)
    assert response.status_code == 200
    page = response.get_json()
    assert page["page"] == 1 and page["per_page"] == 2 and page["total"] == 4
    assert len(page["items"]) == 2
    assert page["items"][0]["booking_stats"] == {
        "total_reservations": 0,
        "confirmed_reservations": 0,
        "upcoming_reservations": 0,
        "cancelled_reservations": 0,
    }
    second = client.get("/api/users?page=2&per_page=2", headers=headers).get_json()
    assert {u["id"] for u in second["items"]}.isdisjoint({u["id"] for u in page["items"]})


def test_admin_filters_users_by_role(client, accounts):
    admin, headers = accounts.admin_with_token()
    accounts.register()
    admins = client.get("/api/users?role=admin", headers=headers).get_json()
    assert [u["id"] for u in admins["items"]] == [admin["id"]]


def test_a_page_of_more_than_100_is_capped_at_100(client, accounts):
    _, headers = accounts.admin_with_token()
    while client.get("/api/users?per_page=1", headers=headers).get_json()["total"] <= 100:
        accounts.register()
    page = client.get("/api/users?per_page=1000", headers=headers).get_json()
    assert page["per_page"] == 100 and len(page["items"]) == 100 and page["total"] > 100


@pytest.mark.parametrize("query", ["per_page=0", "page=0", "per_page=abc", "role=owner", "unknown=1"])
def test_bad_list_parameters_are_422(client, accounts, query):
    _, headers = accounts.admin_with_token()
    response = client.get(f"/api/users?{query}", headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"]


def test_a_user_reads_self_but_not_another_user(client, accounts):
    me, headers = accounts.user_with_token()
    other = accounts.register()
    assert client.get(f"/api/users/{me['id']}", headers=headers).status_code == 200
    assert client.get(f"/api/users/{other['id']}", headers=headers).status_code == 403
    assert client.put(f"/api/users/{other['id']}", json={"full_name": "Mallory"}, headers=headers).status_code == 403


def test_admin_reads_anyone_and_unknown_or_non_numeric_ids_are_404(client, accounts):
    _, headers = accounts.admin_with_token()
    other = accounts.register()
    response = client.get(f"/api/users/{other['id']}", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["booking_stats"]["total_reservations"] == 0
    assert client.get("/api/users/999999999", headers=headers).status_code == 404
    assert client.get("/api/users/abc", headers=headers).status_code == 404
    assert client.get("/api/users/abc", headers=headers).content_type == "application/problem+json"


def test_user_changes_own_full_name(client, accounts):
    me, headers = accounts.user_with_token()
    response = client.put(f"/api/users/{me['id']}", json={"full_name": "Ada King"}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["full_name"] == "Ada King"
    assert client.get("/api/users/me", headers=headers).get_json()["full_name"] == "Ada King"


@pytest.mark.parametrize("body", [{"role": "admin"}, {"is_active": False}, {"role": "user"}])
def test_a_non_admin_sending_role_or_is_active_is_403_and_nothing_changes(client, accounts, body):
    me, headers = accounts.user_with_token()
    response = client.put(f"/api/users/{me['id']}", json={"full_name": "Changed", **body}, headers=headers)
    assert response.status_code == 403
    assert client.get("/api/users/me", headers=headers).get_json() == me


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "new@example.com"}, "email"),
        ({"id": 5}, "id"),
        ({"full_name": 7}, "full_name"),
        ({"password": "short", "current_password": "correct horse"}, "password"),
    ],
)
def test_invalid_or_unknown_update_fields_are_422(client, accounts, body, field):
    me, headers = accounts.user_with_token()
    response = client.put(f"/api/users/{me['id']}", json=body, headers=headers)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_password_change_needs_the_current_password(client, accounts):
    me, headers = accounts.user_with_token()
    missing = client.put(f"/api/users/{me['id']}", json={"password": "a new password"}, headers=headers)
    wrong = client.put(f"/api/users/{me['id']}", json={"password": "a new password", "current_password": "nope"}, headers=headers)
    assert missing.status_code == wrong.status_code == 422
    assert client.post("/api/auth/login", json={"email": me["email"], "password": "a new password"}).status_code == 401


def test_password_change_works_and_ends_other_sessions(client, accounts):
    me, headers = accounts.user_with_token()
    old_session = accounts.login(me["email"])
    response = client.put(
        f"/api/users/{me['id']}", json={"password": "a new password", "current_password": "correct horse"}, headers=headers
    )
    assert response.status_code == 200
    assert client.post("/api/auth/login", json={"email": me["email"], "password": "correct horse"}).status_code == 401
    assert client.post("/api/auth/login", json={"email": me["email"], "password": "a new password"}).status_code == 200
    assert client.post("/api/auth/refresh", json={"refresh_token": old_session["refresh_token"]}).status_code == 401


def test_admin_promotes_a_user(client, accounts):
    _, headers = accounts.admin_with_token()
    other = accounts.register()
    response = client.put(f"/api/users/{other['id']}", json={"role": "admin"}, headers=headers)
    assert response.status_code == 200 and response.get_json()["role"] == "admin"


def test_deactivated_user_cannot_log_in_and_their_tokens_stop_working_at_once(client, accounts):
    _, admin_headers = accounts.admin_with_token()
    user, user_headers = accounts.user_with_token()
    session = accounts.login(user["email"])
    response = client.put(f"/api/users/{user['id']}", json={"is_active": False}, headers=admin_headers)
    assert response.status_code == 200 and response.get_json()["is_active"] is False
    assert client.get("/api/users/me", headers=user_headers).status_code == 401
    assert client.post("/api/auth/login", json={"email": user["email"], "password": "correct horse"}).status_code == 403
    assert client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401


def test_an_admin_cannot_demote_or_deactivate_themselves(client, accounts):
    admin, headers = accounts.admin_with_token()
    assert client.put(f"/api/users/{admin['id']}", json={"is_active": False}, headers=headers).status_code == 409
    assert client.put(f"/api/users/{admin['id']}", json={"role": "user"}, headers=headers).status_code == 409


def test_admin_update_of_an_unknown_user_is_404(client, accounts):
    _, headers = accounts.admin_with_token()
    assert client.put("/api/users/999999999", json={"full_name": "X"}, headers=headers).status_code == 404


def test_ensure_admin_creates_the_admin_once_and_never_touches_an_existing_account(app, accounts):
    user = accounts.register()
    with app.app_context():
        assert services.ensure_admin(user["email"], "ignored for existing") is None
        existing = db.session.get(services.User, user["id"])
        assert existing.role == "user" and existing.is_active  # someone else's account is not promoted
        count = db.session.execute(
            db.select(db.func.count()).select_from(services.User).where(services.User.email == user["email"])
        ).scalar_one()
        assert count == 1
    new_email = unique_email("boss")
    with app.app_context():
        assert services.ensure_admin(new_email, "boss password").role == "admin"
        assert services.ensure_admin(new_email, "boss password") is None
    assert accounts.login(new_email, "boss password")["access_token"]


def test_ids_beyond_bigint_are_404_not_500(client, accounts):
    _, headers = accounts.admin_with_token()
    assert client.get("/api/users/99999999999999999999", headers=headers).status_code == 404
    assert client.put("/api/users/9223372036854775808", json={"full_name": "X"}, headers=headers).status_code == 404
