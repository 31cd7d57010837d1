from servicekit.testing import assert_documented_and_valid


def test_the_openapi_document_is_valid_and_complete(app):
    spec = assert_documented_and_valid(app)
    assert {"RegisterRequest", "UserOut", "Tokens", "Problem"} <= set(spec["components"]["schemas"])
