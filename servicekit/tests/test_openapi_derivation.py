"""The kit documents what a route says (servicekit.openapi): parameters, bodies and the answers they imply."""

from __future__ import annotations

from servicekit.testing import resolved

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _spec(client) -> dict:
    return client.get("/apispec.json").get_json()


def test_path_body_and_the_answers_they_imply_are_documented(client):
    spec = _spec(client)
    operation = spec["paths"]["/api/gadgets/{gadget_id}"]["put"]
    assert {"name": "gadget_id", "in": "path", "required": True, "schema": {"type": "integer"}} in operation["parameters"]
    assert operation["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}},
    }
    answers = operation["responses"]
    for status, name in [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("412", "PreconditionFailed"),
        ("422", "ValidationFailed"),
        ("429", "TooManyRequests"),
        ("503", "ServiceUnavailable"),
    ]:
        assert answers[status] == {"$ref": f"#/components/responses/{name}"}, status
    assert "304" not in answers  # no If-None-Match on this operation
    assert answers["200"]["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}}
    assert "ETag" in answers["200"]["headers"]  # a conditional operation's answer carries its ETag
    assert answers["409"] == {"description": "Taken.", "content": PROBLEM}  # an error answer is a problem document
    assert "tags" not in operation  # not on a blueprint (a blueprint's routes are tagged with its name)


def test_query_parameters_come_from_the_query_model(client):
    operation = _spec(client)["paths"]["/api/gadgets"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert set(parameters) == {"page", "per_page", "colour"}
    assert parameters["per_page"]["schema"]["minimum"] == 1 and parameters["per_page"]["required"] is False
    assert "capped at 100" in parameters["per_page"]["description"]  # more is not refused: it is taken as 100
    colour = parameters["colour"]
    assert colour["style"] == "form" and colour["explode"] is True and colour["schema"]["maxItems"] == 3
    assert colour["description"] == "repeatable; any of them"
    assert "nullable" not in parameters["page"]["schema"] and "default" in parameters["page"]["schema"]
    assert operation["responses"]["422"] == {"$ref": "#/components/responses/ValidationFailed"}
    assert "404" not in operation["responses"] and "403" not in operation["responses"] and "400" not in operation["responses"]


def test_a_public_operation_has_no_401_and_a_plain_docstring_gives_summary_and_description(client):
    spec = _spec(client)
    public = spec["paths"]["/api/gadgets/catalogue.yaml"]["get"]
    assert public["security"] == [] and "401" not in public["responses"]
    assert "application/yaml" in resolved(spec, public["responses"]["200"])["content"]
    plain = spec["paths"]["/api/gadgets/catalogue"]["get"]
    assert plain["summary"] == "The catalogue, for anyone." and plain["description"] == "More words."
    assert plain["responses"]["200"]["content"] == {"application/json": {"schema": {"type": "array"}}}


def test_with_query_validates_and_lets_list_fields_repeat(client):
    headers = {"Authorization": "Bearer 7"}
    assert client.get("/api/gadgets?colour=red&colour=blue", headers=headers).get_json() == ["red", "blue"]
    refused = client.get("/api/gadgets?colour=a&colour=b&colour=c&colour=d", headers=headers)
    assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "colour"
    assert client.get("/api/gadgets?colour=red").status_code == 401  # authenticated before the query is read


def test_with_body_hands_the_validated_body_after_access_is_checked(client):
    assert client.put("/api/gadgets/1", json={"name": "x", "size": 1}, headers={"Authorization": "Bearer 7"}).status_code == 403
    assert client.put("/api/gadgets/1", json={"name": "x", "size": 1}).status_code == 401


def test_an_optional_body_is_documented_as_not_required_and_read_only_when_sent(client):
    operation = _spec(client)["paths"]["/api/gadgets/{gadget_id}/polish"]["post"]
    assert operation["requestBody"]["required"] is False
    assert {"400", "422"} <= set(operation["responses"])
    # An answer written in the docstring: a 429 carries Retry-After, as the kit's own TooManyRequests does.
    assert operation["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert operation["responses"]["429"]["content"] == PROBLEM
    headers = {"Authorization": "Bearer 7"}
    assert client.post("/api/gadgets/1/polish", headers=headers).get_json() == {"polished": None}
    sent = client.post("/api/gadgets/1/polish", json={"name": "w", "size": 2}, headers=headers)
    assert sent.get_json() == {"polished": {"name": "w", "size": 2}}
    assert client.post("/api/gadgets/1/polish", data="{", content_type="application/json", headers=headers).status_code == 400
    assert client.post("/api/gadgets/1/polish", json={"name": "w"}, headers=headers).status_code == 422
