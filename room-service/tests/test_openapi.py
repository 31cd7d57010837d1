from servicekit.testing import assert_documented_and_valid, assert_no_server_errors


def test_the_openapi_document_is_valid_and_complete(app):
    spec = assert_documented_and_valid(app)
    assert {"RoomCreate", "RoomUpdate", "RoomOut", "InternalRoom", "BookingPolicy", "OpenHours"} <= set(
        spec["components"]["schemas"]
    )
    assert {"timezone", "booking_policy"} <= set(spec["components"]["schemas"]["RoomOut"]["properties"])


def test_no_generated_request_makes_the_service_fail(app, admin):
    assert_no_server_errors(app, admin, minimum_operations=6)
