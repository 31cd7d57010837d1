"""Part 2 of API.md, "Rooms: time zone and booking policy": stored, validated, shown and announced."""

from __future__ import annotations

import pytest
from conftest import room_body

from config import RoomServiceConfig
from servicekit.config import ConfigError

DEFAULT_POLICY = {"open_hours": None, "min_minutes": 5, "max_minutes": 720, "horizon_days": 365, "auto_release": False}
BERLIN_HOURS = {"mon": [["08:00", "12:00"], ["13:00", "20:00"]], "sat": [["10:00", "24:00"]]}


def test_a_room_created_without_rules_is_in_utc_and_always_open(make_room):
    room = make_room()
    assert room["timezone"] == "UTC"
    assert room["booking_policy"] == DEFAULT_POLICY


def test_time_zone_and_policy_are_stored_shown_and_listed(client, user, make_room):
    policy = {"open_hours": BERLIN_HOURS, "min_minutes": 15, "max_minutes": 240, "horizon_days": 90, "auto_release": True}
    room = make_room(timezone="Europe/Berlin", booking_policy=policy)
    assert room["timezone"] == "Europe/Berlin"
    assert room["booking_policy"] == policy  # days not given stay closed, and are not invented
    assert client.get(f"/api/rooms/{room['id']}", headers=user).get_json() == room
    listed = client.get("/api/rooms", headers=user).get_json()["items"]
    assert [r for r in listed if r["id"] == room["id"]] == [room]


def test_policy_fields_not_sent_take_the_defaults(make_room):
    room = make_room(timezone="Asia/Kolkata", booking_policy={"max_minutes": 90})
    assert room["booking_policy"] == {**DEFAULT_POLICY, "max_minutes": 90}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "../etc/passwd"}, "timezone"),
        ({"timezone": 1}, "timezone"),
        ({"booking_policy": {"open_hours": {"mon": [["20:00", "08:00"]]}}}, "booking_policy.open_hours.mon"),
        ({"booking_policy": {"open_hours": {"mon": [["8:00", "20:00"]]}}}, "booking_policy.open_hours.mon.0.0"),
        ({"booking_policy": {"open_hours": {"tue": [["08:00", "12:00"], ["11:00", "14:00"]]}}}, "booking_policy.open_hours.tue"),
        ({"booking_policy": {"open_hours": {"wed": [["08:00"]]}}}, "booking_policy.open_hours.wed.0"),
        ({"booking_policy": {"open_hours": {"mon": [["24:00", "24:00"]]}}}, "booking_policy.open_hours.mon"),
        ({"booking_policy": {"open_hours": {"monday": [["08:00", "20:00"]]}}}, "booking_policy.open_hours.monday"),
        ({"booking_policy": {"min_minutes": 0}}, "booking_policy.min_minutes"),
        ({"booking_policy": {"max_minutes": "60"}}, "booking_policy.max_minutes"),
        ({"booking_policy": {"min_minutes": 120, "max_minutes": 60}}, "booking_policy.max_minutes"),
        ({"booking_policy": {"horizon_days": 0}}, "booking_policy.horizon_days"),
        ({"booking_policy": {"auto_release": "yes"}}, "booking_policy.auto_release"),
        ({"booking_policy": {"cleaning": 5}}, "booking_policy.cleaning"),
    ],
)
def test_invalid_time_zones_and_policies_are_422_naming_the_field(client, admin, change, field):
    response = client.post("/api/rooms", json=room_body(**change), headers=admin)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_put_changes_the_policy_fields_sent_and_keeps_the_others(client, admin, make_room):
    room = make_room(timezone="Europe/Berlin", booking_policy={"open_hours": BERLIN_HOURS, "max_minutes": 240})
    response = client.put(f"/api/rooms/{room['id']}", json={"booking_policy": {"min_minutes": 30}}, headers=admin)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["booking_policy"] == {
        **DEFAULT_POLICY,
        "open_hours": BERLIN_HOURS,
        "max_minutes": 240,
        "min_minutes": 30,
    }
    reopened = client.put(
        f"/api/rooms/{room['id']}", json={"timezone": "Asia/Kolkata", "booking_policy": {"open_hours": None}}, headers=admin
    ).get_json()
    assert reopened["timezone"] == "Asia/Kolkata" and reopened["booking_policy"]["open_hours"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": None}, "timezone"),
        ({"timezone": "Nowhere/Special"}, "timezone"),
        ({"booking_policy": {"min_minutes": None}}, "booking_policy.min_minutes"),
        ({"booking_policy": {"min_minutes": 500}}, "booking_policy.max_minutes"),  # above the room's max of 240
        ({"booking_policy": {"open_hours": {"sun": [["09:00", "09:00"]]}}}, "booking_policy.open_hours.sun"),
    ],
)
def test_invalid_put_is_422_naming_the_field_and_changes_nothing(client, admin, make_room, change, field):
    room = make_room(booking_policy={"max_minutes": 240})
    response = client.put(f"/api/rooms/{room['id']}", json=change, headers=admin)
    assert response.status_code == 422, response.get_json()
    assert field in [e["field"] for e in response.get_json()["errors"]]
    assert client.get(f"/api/rooms/{room['id']}", headers=admin).get_json() == room


def test_a_policy_change_is_announced_on_room_events(client, admin, make_room, topics):
    room = make_room(timezone="Europe/Berlin")
    client.put(f"/api/rooms/{room['id']}", json={"booking_policy": {"open_hours": BERLIN_HOURS}}, headers=admin)
    client.put(f"/api/rooms/{room['id']}", json={"booking_policy": {"open_hours": BERLIN_HOURS}}, headers=admin)  # no change
    events = topics.collect("room-events", lambda key, value: key == str(room["id"]), expect=2, settle=1.5)
    assert [e["event_type"] for e in events] == ["room.created", "room.updated"]
    assert events[0]["data"]["timezone"] == "Europe/Berlin"
    assert events[1]["data"]["booking_policy"]["open_hours"] == BERLIN_HOURS


def test_default_timezone_comes_from_the_environment_and_is_validated(config):
    base = {"DATABASE_URL": config.database_url, "JWKS_URL": config.jwks_url}
    assert RoomServiceConfig.from_env(base).default_timezone == "UTC"
    assert RoomServiceConfig.from_env({**base, "DEFAULT_TIMEZONE": "Europe/Berlin"}).default_timezone == "Europe/Berlin"
    with pytest.raises(ConfigError, match="DEFAULT_TIMEZONE"):
        RoomServiceConfig.from_env({**base, "DEFAULT_TIMEZONE": "Europe/Atlantis"})


def test_rooms_take_the_configured_default_timezone(app, admin):
    from dataclasses import replace

    from app import create_app

    berlin_app = create_app(replace(app.config["SERVICE"], default_timezone="Europe/Berlin"))
    response = berlin_app.test_client().post("/api/rooms", json=room_body(), headers=admin)
    assert response.status_code == 201 and response.get_json()["timezone"] == "Europe/Berlin"
