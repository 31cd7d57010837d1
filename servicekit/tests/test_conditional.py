"""servicekit.conditional: ETags, If-None-Match (weak comparison) and If-Match (strong comparison)."""

from __future__ import annotations

import pytest
from flask import Flask

from servicekit.conditional import PreconditionFailed, body_with_etag, etag_for, json_with_etag, require_match

app = Flask(__name__)


def test_an_etag_is_strong_and_depends_only_on_the_representation():
    assert etag_for({"a": 1, "b": [2]}) == etag_for({"b": [2], "a": 1})
    assert etag_for({"a": 1}) != etag_for({"a": 2})
    assert etag_for(b"BEGIN:VCALENDAR") == etag_for("BEGIN:VCALENDAR")
    tag = etag_for({"a": 1})
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 200), ("CURRENT", 304), ('"old", CURRENT', 304), ("W/CURRENT", 304), ("*", 304), ('"old"', 200)],
)
def test_if_none_match_is_304_without_body_when_any_tag_matches_weakly(header, status):
    body = {"id": 7}
    current = etag_for(body)
    headers = {"If-None-Match": header.replace("CURRENT", current)} if header else {}
    with app.test_request_context("/", headers=headers):
        response = json_with_etag(body)
    assert response.status_code == status and response.headers["ETag"] == current
    assert (response.get_data() == b"") == (status == 304)


def test_if_none_match_does_not_turn_a_write_into_304():
    with app.test_request_context("/", method="PUT", headers={"If-None-Match": "*"}):
        assert json_with_etag({"id": 7}).status_code == 200


def test_a_non_json_body_keeps_its_media_type_and_headers():
    with app.test_request_context("/"):
        response = body_with_etag(b"BEGIN:VCALENDAR\r\n", "text/calendar", headers={"Cache-Control": "no-cache"})
    assert response.mimetype == "text/calendar" and response.headers["ETag"] == etag_for(b"BEGIN:VCALENDAR\r\n")
    with app.test_request_context("/", headers={"If-None-Match": response.headers["ETag"]}):
        cached = body_with_etag(b"BEGIN:VCALENDAR\r\n", "text/calendar", headers={"Cache-Control": "no-cache"})
    assert cached.status_code == 304 and cached.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("header", [None, "*", "CURRENT", '"old", CURRENT'])
def test_if_match_lets_a_write_through_when_absent_star_or_current(header):
    current = etag_for({"id": 7})
    require_match(header.replace("CURRENT", current) if header else None, current)


@pytest.mark.parametrize("header", ['"old"', "W/CURRENT", ""])
def test_if_match_refuses_stale_or_weak_tags_with_412(header):
    current = etag_for({"id": 7})
    with pytest.raises(PreconditionFailed) as refused:
        require_match(header.replace("CURRENT", current), current)
    assert refused.value.status == 412 and refused.value.to_dict()["type"] == "/problems/precondition-failed"
