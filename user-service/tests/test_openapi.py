from servicekit.testing import assert_documented_and_valid


def test_the_openapi_document_is_valid_and_complete(app):
    spec = assert_documented_and_valid(app)
    assert {"RegisterRequest", "UserOut", "Tokens", "Problem"} <= set(spec["components"]["schemas"])


def test_a_user_as_an_admin_and_as_themselves_fits_its_documented_schema(client, accounts):
    from servicekit.testing import assert_fits_schema

    spec = client.get("/apispec.json").get_json()
    user, headers = accounts.user_with_token()
    _, admin_headers = accounts.admin_with_token()
    assert_fits_schema(spec, "UserOut", client.get("/api/users/me", headers=headers).get_json())
    as_admin = client.get(f"/api/users/{user['id']}", headers=admin_headers).get_json()
    assert "booking_stats" in as_admin
    assert_fits_schema(spec, "UserOut", as_admin)
    assert_fits_schema(spec, "UserPage", client.get("/api/users?per_page=3", headers=admin_headers).get_json())
