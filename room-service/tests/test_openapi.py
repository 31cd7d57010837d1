from servicekit.testing import assert_documented_and_valid, assert_fits_schema, assert_no_server_errors


def test_the_openapi_document_is_valid_and_complete(app):
    spec = assert_documented_and_valid(app)
    assert {"RoomCreate", "RoomUpdate", "RoomOut", "InternalRoom", "BookingPolicy", "OpenHours"} <= set(
        spec["components"]["schemas"]
    )
    assert {"timezone", "booking_policy"} <= set(spec["components"]["schemas"]["RoomOut"]["properties"])


def test_no_generated_request_makes_the_service_fail(app, admin):
    assert_no_server_errors(app, admin, minimum_operations=6)


def test_a_room_with_the_default_policy_fits_its_documented_schema(client, make_room, user):
    """`open_hours` is null by default: the schema must say so in a way OpenAPI 3.0.3 validators accept."""
    spec = client.get("/apispec.json").get_json()
    room = client.get(f"/api/rooms/{make_room()['id']}", headers=user).get_json()
    assert room["booking_policy"]["open_hours"] is None
    assert_fits_schema(spec, "RoomOut", room)
    assert_fits_schema(spec, "RoomPage", client.get("/api/rooms?per_page=5", headers=user).get_json())
    opened = make_room(booking_policy={"open_hours": {"mon": [["08:00", "18:00"]]}})
    assert_fits_schema(spec, "RoomOut", opened)
