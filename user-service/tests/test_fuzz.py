"""Generated requests from the OpenAPI document: nothing a client sends makes user-service fail."""

from conftest import Accounts

from servicekit.testing import assert_no_server_errors


def test_no_generated_request_makes_the_service_fail(app):
    admin_headers = Accounts(app.test_client(), app).admin_with_token()[1]
    assert_no_server_errors(app, admin_headers, minimum_operations=9)
