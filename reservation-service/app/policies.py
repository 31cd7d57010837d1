"""A room's booking policy (from room-service) applied to one booking. Pure rules: no Flask, no database.

Times are instants (aware, UTC); opening hours are wall-clock times in the room's zone, turned into
instants on each local date, so DST changes are handled by zoneinfo and durations are real elapsed time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PLURAL_DAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


@dataclass(frozen=True)
class BookingPolicy:
    open_hours: dict[str, list[list[str]]] | None
    min_minutes: int
    max_minutes: int
    horizon_days: int
    auto_release: bool = False

    @classmethod
    def of_room(cls, stored: dict | None, fallback: BookingPolicy) -> BookingPolicy:
        """The policy room-service announced, or `fallback` for a room announced before rooms had one."""
        if not stored:
            return fallback
        return cls(
            open_hours=stored.get("open_hours"),
            min_minutes=int(stored.get("min_minutes", fallback.min_minutes)),
            max_minutes=int(stored.get("max_minutes", fallback.max_minutes)),
            horizon_days=int(stored.get("horizon_days", fallback.horizon_days)),
            auto_release=bool(stored.get("auto_release", False)),
        )


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r in the room read model; using UTC", name)
        return ZoneInfo("UTC")


def within_calendar(start: datetime, end: datetime) -> bool:
    """Far enough from year 1 and 9999 for local dates a day either side (no OverflowError)."""
    return start.year > 1 and end.year < 9999


def _instant(day: date, clock: str, zone: ZoneInfo) -> datetime:
    """The instant of wall-clock `clock` ("HH:MM", "24:00" = next midnight) on local `day`."""
    if clock == "24:00":
        day, clock = day + timedelta(days=1), "00:00"
    hours, minutes = (int(part) for part in clock.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=zone).astimezone(UTC)


def open_intervals(open_hours: dict, zone: ZoneInfo, first: date, last: date) -> list[tuple[datetime, datetime]]:
    """The room's open intervals (UTC instants) on local dates first..last, touching ones merged."""
    intervals = []
    day = first
    while day <= last:
        for start, end in open_hours.get(WEEKDAYS[day.weekday()]) or []:
            opens, closes = _instant(day, start, zone), _instant(day, end, zone)
            if closes > opens:  # an interval inside a spring-forward gap is empty
                intervals.append((opens, closes))
        day += timedelta(days=1)
    return merged_intervals(intervals)


def merged_intervals(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Half-open intervals sorted, those that overlap or touch joined into one: disjoint and in order."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def describe_day(room_name: str, zone_name: str, open_hours: dict, day: date) -> str:
    """e.g. "Room 'Aurora' is open 08:00–20:00 Europe/Berlin on Mondays"."""
    hours = open_hours.get(WEEKDAYS[day.weekday()]) or []
    plural = PLURAL_DAYS[day.weekday()]
    if not hours:
        return f"Room '{room_name}' is closed on {plural} ({zone_name})"
    spans = " and ".join(f"{start}–{end}" for start, end in hours)
    return f"Room '{room_name}' is open {spans} {zone_name} on {plural}"


def opening_hours_violation(
    room_name: str, zone_name: str | None, open_hours: dict | None, start: datetime, end: datetime
) -> dict | None:
    """The error for a booking not wholly inside the room's opening hours, or None."""
    if open_hours is None or not within_calendar(start, end):
        return None  # a booking at the edge of the calendar fails on other rules (past, horizon, length)
    zone_name = zone_name or "UTC"
    zone = zone_of(zone_name)
    first, last = start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date()
    for opens, closes in open_intervals(open_hours, zone, first, last):
        if opens <= start < closes:
            if end <= closes:
                return None
            # Starts while open, but the room closes before the end.
            field, closed_at = "end_time", closes
            break
    else:
        field, closed_at = "start_time", start
    message = describe_day(room_name, zone_name, open_hours, closed_at.astimezone(zone).date())
    return {"field": field, "rule": "booking_policy.open_hours", "message": message + "."}


def plain_number(value: float) -> str:
    """A number for a message: at most two decimals, never in scientific notation (4193385839, not 4.19339e+09)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def policy_violations(
    room_name: str, zone_name: str | None, policy: BookingPolicy, start: datetime, end: datetime, now: datetime
) -> list[dict]:
    """Every rule of the room's policy this booking breaks (each names its field and rule)."""
    errors = []
    minutes = (end - start).total_seconds() / 60  # real elapsed time, whatever the clocks did
    if minutes < policy.min_minutes:
        errors.append(
            {
                "field": "end_time",
                "rule": "booking_policy.min_minutes",
                "message": f"Room '{room_name}' is booked for at least {policy.min_minutes} minutes; "
                f"this booking lasts {plain_number(minutes)}.",
            }
        )
    if minutes > policy.max_minutes:
        errors.append(
            {
                "field": "end_time",
                "rule": "booking_policy.max_minutes",
                "message": f"Room '{room_name}' is booked for at most {policy.max_minutes} minutes; "
                f"this booking lasts {plain_number(minutes)}.",
            }
        )
    if start > now + timedelta(days=policy.horizon_days):
        errors.append(
            {
                "field": "start_time",
                "rule": "booking_policy.horizon_days",
                "message": f"Room '{room_name}' can be booked at most {policy.horizon_days} days ahead.",
            }
        )
    closed = opening_hours_violation(room_name, zone_name, policy.open_hours, start, end)
    if closed:
        errors.append(closed)
    return errors


def iso_weeks(zone_name: str | None, start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """The ISO weeks of the room's zone that [start, end) touches: (label, week start, week end) as instants."""
    zone = zone_of(zone_name)
    local = start.astimezone(zone).date()
    monday = local - timedelta(days=local.weekday())
    weeks = []
    while True:
        week_start = datetime.combine(monday, time(0), tzinfo=zone).astimezone(UTC)
        if week_start >= end:
            return weeks
        week_end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone).astimezone(UTC)
        year, week, _ = monday.isocalendar()
        weeks.append((f"{year}-W{week:02d}", week_start, week_end))
        monday += timedelta(days=7)
