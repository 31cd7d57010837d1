from servicekit.testing import assert_documented_and_valid, resolved


def _names(spec: dict, parameters: list[dict]) -> set[str]:
    """The header/query names of `parameters`, references to the shared ones resolved."""
    shared = spec["components"]["parameters"]
    return {(shared[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p)["name"] for p in parameters}


def test_the_openapi_document_is_valid_and_complete(app):
    spec = assert_documented_and_valid(app)
    assert {"ReservationCreate", "ReservationOut", "BookingConflict", "Schedule"} <= set(spec["components"]["schemas"])
    assert _names(spec, spec["paths"]["/api/reservations"]["post"]["parameters"]) >= {"Idempotency-Key"}


def test_the_spec_shows_blackouts_quotas_and_both_kinds_of_booking_conflict(app):
    from openapi_schema_validator import OAS30Validator

    spec = assert_documented_and_valid(app)
    schemas = spec["components"]["schemas"]
    assert {"BlackoutCreate", "BlackoutOut", "BlackoutPage", "QuotaExceeded"} <= set(schemas)
    assert {"get", "post"} <= set(spec["paths"]["/api/blackouts"]) and "delete" in spec["paths"]["/api/blackouts/{blackout_id}"]
    conflict = {**schemas["BookingConflict"], "components": spec["components"]}  # its $refs resolve in there
    problem = {"type": "/problems/booking-conflict", "title": "Booking Conflict", "status": 409, "detail": "d"}
    blackout = {
        "blackout_id": 1,
        "start_time": "2030-01-01T09:00:00+00:00",
        "end_time": "2030-01-01T10:00:00+00:00",
        "reason": "r",
    }
    clash = {"reservation_id": 2, "start_time": "2030-01-01T09:00:00+00:00", "end_time": "2030-01-01T10:00:00+00:00"}
    validator = OAS30Validator(conflict)
    assert validator.is_valid({**problem, "blackouts": [blackout]})
    assert validator.is_valid({**problem, "conflicts": [clash]})
    assert validator.is_valid({**problem, "conflicts": [clash], "blackouts": [blackout]})
    assert not validator.is_valid(problem)  # a booking clash names what is in the way
    assert validator.is_valid({**problem, "type": "/problems/conflict", "detail": "A cancelled reservation cannot be changed."})
    create_409 = spec["paths"]["/api/reservations"]["post"]["responses"]["409"]["content"]["application/problem+json"]
    assert {"$ref": "#/components/schemas/QuotaExceeded"} in resolved(spec, create_409["schema"])["anyOf"]


def test_the_spec_shows_finding_a_room(app):
    spec = assert_documented_and_valid(app)
    schemas = spec["components"]["schemas"]
    assert {"AvailabilityPage", "FreeBusy", "Suggestion"} <= set(schemas)
    assert "suggestions" in schemas["BookingConflict"]["properties"]
    assert {"/api/availability", "/api/availability/free-busy"} <= set(spec["paths"])


def test_the_spec_documents_recurring_series(app):
    from openapi_schema_validator import OAS30Validator

    spec = assert_documented_and_valid(app)
    schemas = spec["components"]["schemas"]
    assert {"SeriesCreate", "SeriesOut", "SeriesConflict"} <= set(schemas)
    assert "post" in spec["paths"]["/api/reservations/series"]
    assert {"get", "delete"} <= set(spec["paths"]["/api/reservations/series/{series_id}"])
    create = spec["paths"]["/api/reservations/series"]["post"]
    assert _names(spec, create["parameters"]) >= {"Idempotency-Key"}
    assert {"201", "409", "422"} <= set(create["responses"])
    assert {"recurrence", "on_conflict"} <= set(schemas["SeriesCreate"]["properties"])
    assert "series_id" in schemas["ReservationOut"]["properties"]
    conflict = OAS30Validator({**schemas["SeriesConflict"], "components": spec["components"]})
    clash = {
        "start_time": "2030-01-01T09:00:00+00:00",
        "end_time": "2030-01-01T10:00:00+00:00",
        "reason": "conflict",
        "message": "m",
        "conflicts": [{"reservation_id": 1, "start_time": "2030-01-01T09:00:00+00:00", "end_time": "2030-01-01T10:00:00+00:00"}],
        "blackouts": [],
    }
    problem = {"type": "/problems/series-conflict", "title": "Series Conflict", "status": 409, "detail": "d"}
    assert conflict.is_valid({**problem, "occurrences": [clash]})
    assert not conflict.is_valid({**problem, "occurrences": [{**clash, "reason": "unknown"}]})
