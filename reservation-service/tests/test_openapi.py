from servicekit.testing import assert_documented_and_valid


def test_the_openapi_document_is_valid_and_complete(app):
    spec = assert_documented_and_valid(app)
    assert {"ReservationCreate", "ReservationOut", "BookingConflict", "Schedule"} <= set(spec["components"]["schemas"])
    assert any(p["name"] == "Idempotency-Key" for p in spec["paths"]["/api/reservations"]["post"]["parameters"])
