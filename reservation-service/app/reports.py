"""The utilisation report (admins): per room, booked and open hours in a period, bookings,
cancellations and releases (no-shows). No Flask here."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select

from servicekit.db import db
from servicekit.problems import ValidationFailed

from .models import Reservation, RoomReplica
from .policies import open_intervals, zone_of
from .schemas import RoomUtilization, UtilizationReport

MAX_REPORT_DAYS = 366
CSV_COLUMNS = list(RoomUtilization.model_fields)


def _open_seconds(open_hours: dict | None, zone_name: str, start: datetime, end: datetime) -> float:
    """Seconds the room is open in [start, end): its opening hours in its zone (null = always open)."""
    if open_hours is None:
        return (end - start).total_seconds()
    zone = zone_of(zone_name)
    first, last = start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date()
    total = 0.0
    for opens, closes in open_intervals(open_hours, zone, first, last):
        overlap = (min(closes, end) - max(opens, start)).total_seconds()
        total += max(0.0, overlap)
    return total


def utilization(start: datetime, end: datetime) -> UtilizationReport:
    """Every room that exists (and every deleted one that had bookings in the period), by id."""
    if end <= start:
        raise ValidationFailed.single("to", "Must be after from.")
    if end - start > timedelta(days=MAX_REPORT_DAYS):
        raise ValidationFailed.single("to", f"The period is at most {MAX_REPORT_DAYS} days.")
    overlap = func.least(Reservation.end_time, end) - func.greatest(Reservation.start_time, start)
    confirmed = Reservation.status == "confirmed"
    per_room = {
        row.room_id: row
        for row in db.session.execute(
            select(
                Reservation.room_id,
                func.coalesce(func.sum(case((confirmed, func.extract("epoch", overlap)), else_=0)), 0).label("seconds"),
                func.count().filter(confirmed).label("bookings"),
                func.count().filter(Reservation.status == "cancelled").label("cancellations"),
                func.count().filter(Reservation.status == "released").label("releases"),
            )
            .where(Reservation.start_time < end, Reservation.end_time > start)
            .group_by(Reservation.room_id)
        )
    }
    replicas = db.session.execute(
        select(RoomReplica)
        .where(or_(RoomReplica.deleted.is_(False), RoomReplica.room_id.in_(list(per_room))))
        .order_by(RoomReplica.room_id)
    ).scalars()
    rooms = []
    for room in replicas:
        row = per_room.get(room.room_id)
        booked = float(row.seconds) if row else 0.0
        policy = room.booking_policy or {}
        opened = _open_seconds(policy.get("open_hours"), room.timezone, start, end)
        rooms.append(
            RoomUtilization(
                room_id=room.room_id,
                name=room.name,
                timezone=room.timezone,
                booked_hours=round(booked / 3600, 2),
                open_hours=round(opened / 3600, 2),
                utilization=round(100 * booked / opened, 1) if opened > 0 else None,
                bookings=row.bookings if row else 0,
                cancellations=row.cancellations if row else 0,
                releases=row.releases if row else 0,
            )
        )
    db.session.commit()
    return UtilizationReport(from_=start, to=end, rooms=rooms)


# A text cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP): it is written
# with a leading apostrophe, which spreadsheets show as text and do not display.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def as_csv(report: UtilizationReport) -> str:
    """The report's rooms as CSV (RFC 4180), a header row first; an empty utilisation is an empty cell, and a
    room name a spreadsheet would run as a formula is written as text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for room in report.rooms:
        values = room.model_dump(mode="json")
        writer.writerow([_cell(values[column]) for column in CSV_COLUMNS])
    return out.getvalue()
