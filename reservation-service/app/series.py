"""Recurring series: an RFC 5545 RRULE expanded in the room's time zone, every occurrence put through
the single-booking rules, the whole series booked in one transaction under the exclusion constraint.
No Flask here.

Wall-clock time is kept: the rule is expanded from start_time as a local time of the room's zone, and
each local occurrence is turned into an instant with RFC 5545 §3.3.5: a local time that happens twice
(fall-back) is the first of the two, one that does not exist (spring-forward gap) is read with the
offset from before the gap (02:30 becomes 03:30 summer time). That is Python's `fold=0`. Every
occurrence lasts exactly as long as the first (RFC 5545 §3.8.5.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import NoReturn

from dateutil.rrule import rrule, rrulestr
from sqlalchemy import DateTime, Integer, and_, column, func, or_, select, values

from servicekit.auth import Principal
from servicekit.db import LookAgain, db, flush_or_raise, retried, utcnow
from servicekit.events import record_event
from servicekit.problems import Conflict, Forbidden, NotFound, ValidationFailed

from . import locks, services
from .models import Blackout, Reservation, ReservationSeries
from .policies import BookingPolicy, policy_violations, zone_of
from .schemas import SeriesCreate

SUPPORTED_PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"})
SUPPORTED_FREQUENCIES = frozenset({"DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
OPEN_HOURS_RULE = "booking_policy.open_hours"
# A skip-mode series that lost a race at the constraint looks again; the rival has committed by then.
RACE_ATTEMPTS = 3
# Series cancelled with DELETE /series/{id} are told in one mail (see `told_in_series_mail`).
SERIES_CANCELLATION = "series"


class SeriesConflict(Conflict):
    type = "/problems/series-conflict"
    title = "Series Conflict"


@dataclass(frozen=True)
class Occurrence:
    start: datetime
    end: datetime


@dataclass
class Refusal:
    occurrence: Occurrence
    reason: str  # conflict | blackout | closed | quota
    message: str
    conflicts: list[Reservation]
    blackouts: list[Blackout]

    def skipped(self) -> dict:
        return {
            "start_time": self.occurrence.start.isoformat(),
            "end_time": self.occurrence.end.isoformat(),
            "reason": self.reason,
            "message": self.message,
        }

    def clash(self) -> dict:
        return {
            **self.skipped(),
            "conflicts": [
                {"reservation_id": r.id, "start_time": r.start_time.isoformat(), "end_time": r.end_time.isoformat()}
                for r in self.conflicts
            ],
            "blackouts": [
                {
                    "blackout_id": b.id,
                    "start_time": b.start_time.isoformat(),
                    "end_time": b.end_time.isoformat(),
                    "reason": b.reason,
                }
                for b in self.blackouts
            ],
        }


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed.single("recurrence", message)


def _rule_parts(recurrence: str) -> dict[str, str]:
    """NAME=VALUE parts of the rule, checked against what this service supports (values are dateutil's to parse)."""
    rule = recurrence.strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[len("RRULE:") :]
    parts: dict[str, str] = {}
    for item in rule.split(";"):
        name, sep, value = item.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise _invalid(f"'{item}' is not NAME=VALUE.")
        if name in parts:
            raise _invalid(f"{name} is given twice.")
        parts[name] = value
    unsupported = sorted(set(parts) - SUPPORTED_PARTS)
    if unsupported:
        raise _invalid(f"Not supported: {', '.join(unsupported)} (supported: {', '.join(sorted(SUPPORTED_PARTS))}).")
    if parts.get("FREQ") not in SUPPORTED_FREQUENCIES:
        raise _invalid(f"FREQ must be one of {', '.join(sorted(SUPPORTED_FREQUENCIES))}.")
    if "INTERVAL" in parts and not (parts["INTERVAL"].isdigit() and 1 <= int(parts["INTERVAL"]) <= 1000):
        raise _invalid("INTERVAL must be a whole number from 1 to 1000.")
    if "COUNT" in parts and not (parts["COUNT"].isdigit() and int(parts["COUNT"]) >= 1):
        raise _invalid("COUNT must be a whole number of at least 1.")
    if ("COUNT" in parts) == ("UNTIL" in parts):
        raise _invalid("Exactly one of COUNT and UNTIL is required.")
    if parts["FREQ"] in ("DAILY", "WEEKLY") and any(c.isdigit() for c in parts.get("BYDAY", "")):
        raise _invalid("BYDAY ordinals (such as 1MO or -1FR) need FREQ=MONTHLY or YEARLY.")
    _check_month_days(parts)
    return parts


def _numbers(value: str, name: str, high: int, *, negative: bool) -> list[int]:
    try:
        numbers = [int(item) for item in value.split(",")]
    except ValueError:
        raise _invalid(f"{name} must be a list of whole numbers.") from None
    if not all(1 <= (-n if negative and n < 0 else n) <= high for n in numbers):
        raise _invalid(f"{name} values must be from 1 to {high}" + (f" or -{high} to -1." if negative else "."))
    return numbers


def _check_month_days(parts: dict[str, str]) -> None:
    """Refuse a BYMONTH/BYMONTHDAY pair that no year has (BYMONTH=2;BYMONTHDAY=30): dateutil would search for
    it until the year 9999 before saying there is none."""
    months = _numbers(parts["BYMONTH"], "BYMONTH", 12, negative=False) if "BYMONTH" in parts else list(range(1, 13))
    if "BYMONTHDAY" not in parts:
        return
    days = _numbers(parts["BYMONTHDAY"], "BYMONTHDAY", 31, negative=True)
    longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
    if not any(abs(day) <= longest.get(month, 31) for month in months for day in days):
        raise _invalid("No month of BYMONTH has a day of BYMONTHDAY.")


def feed_rule(recurrence: str, count: int) -> str:
    """The rule as a calendar feed states it: COUNT of the occurrences it was expanded to, whatever bounded it
    (an UNTIL read in the room's zone, the horizon), so calendar apps expand exactly the same set."""
    parts = {name: value for name, value in _rule_parts(recurrence).items() if name not in ("COUNT", "UNTIL")}
    return ";".join([*(f"{name}={value}" for name, value in parts.items()), f"COUNT={count}"])


def _local_until(value: str, zone) -> datetime:
    """UNTIL as a wall-clock time of the room's zone: UTC (…Z) converted, a date meaning its whole day."""
    try:
        if value.endswith("Z"):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        if "T" in value:
            return datetime.strptime(value, "%Y%m%dT%H%M%S")
        return datetime.combine(datetime.strptime(value, "%Y%m%d").date(), time(23, 59, 59))
    except (ValueError, OverflowError):
        raise _invalid("UNTIL must be a date (20270301) or a date-time (20270301T090000Z).") from None


def _beyond_horizon(message: str) -> ValidationFailed:
    return ValidationFailed(
        [{"field": "recurrence", "rule": "booking_policy.horizon_days", "message": message}], detail=f"recurrence: {message}"
    )


def expand(
    recurrence: str, zone_name: str, start: datetime, end: datetime, *, limit: int, latest_start: datetime
) -> list[Occurrence]:
    """The occurrences of the rule from `start` (an instant) in the zone, each as long as [start, end).

    The expansion never looks further than just past the room's horizon (`latest_start`), so a rule with
    few or no real occurrences (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) costs no more than one that fits.
    """
    parts = _rule_parts(recurrence)
    zone = zone_of(zone_name)
    until = parts.pop("UNTIL", None)
    first = start.astimezone(zone).replace(tzinfo=None)
    horizon = latest_start.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    try:
        rule = rrulestr(";".join(f"{name}={value}" for name, value in parts.items()), dtstart=first)
        wanted = int(parts["COUNT"]) if "COUNT" in parts else None
        last = _local_until(until, zone) if until is not None else horizon
        if last > horizon + timedelta(days=400):
            raise _beyond_horizon("UNTIL lies more than a year beyond the room's booking horizon.")
        bounded = rule.replace(count=None, until=min(last, horizon))
    except (ValueError, TypeError, OverflowError, IndexError) as exc:
        raise _invalid(f"Not a valid RRULE: {exc}.") from None
    if not isinstance(rule, rrule):  # pragma: no cover - rrulestr gives a set only for several rules
        raise _invalid("One RRULE is expected.")
    if wanted is not None and wanted > limit:
        raise _invalid(f"At most {limit} occurrences are allowed (MAX_SERIES_OCCURRENCES); COUNT is {wanted}.")
    duration = end - start
    occurrences: list[Occurrence] = []
    try:
        for local in bounded:
            if len(occurrences) == wanted:
                break
            if len(occurrences) == limit:
                raise _invalid(f"At most {limit} occurrences are allowed (MAX_SERIES_OCCURRENCES); this rule gives more.")
            instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if instant > latest_start:
                raise _beyond_horizon(
                    f"The occurrence of {local:%Y-%m-%d %H:%M} {zone_name} is beyond the room's booking horizon; "
                    "end the series earlier (COUNT or UNTIL)."
                )
            occurrences.append(Occurrence(instant, instant + duration))
        if wanted is not None and 0 < len(occurrences) < wanted:
            raise _beyond_horizon(
                f"Only {len(occurrences)} of the {wanted} occurrences (COUNT) fall within the room's booking horizon."
            )
        if until is not None and last > horizon and bounded.replace(until=last).after(horizon) is not None:
            raise _beyond_horizon("The rule has occurrences beyond the room's booking horizon; end it earlier (UNTIL).")
    except (ValueError, OverflowError, IndexError) as exc:
        raise _invalid(f"The rule cannot be expanded: {exc}.") from None
    if not occurrences:
        raise _invalid("The rule gives no occurrence at or after start_time within the room's booking horizon.")
    return occurrences


def _closed_or_invalid(room, policy: BookingPolicy, occurrences: list[Occurrence], now: datetime) -> dict[Occurrence, str]:
    """The single-booking policy on each occurrence: length rules refuse the series (422); closed hours are
    a clash of that occurrence (returned, with the room's hours in words)."""
    closed = {}
    for occurrence in occurrences:
        errors = policy_violations(room.name, room.timezone, policy, occurrence.start, occurrence.end, now)
        refusing = [e for e in errors if e["rule"] != OPEN_HOURS_RULE]
        if refusing:
            raise ValidationFailed(refusing, detail=" ".join(e["message"] for e in refusing))
        if errors:
            closed[occurrence] = errors[0]["message"]
    return closed


def _slots(occurrences: list[Occurrence]):
    return values(
        column("n", Integer), column("s", DateTime(timezone=True)), column("e", DateTime(timezone=True)), name="slots"
    ).data([(n, o.start, o.end) for n, o in enumerate(occurrences)])


def _in_the_way(room_id: int, occurrences: list[Occurrence]) -> tuple[dict[int, list], dict[int, list]]:
    """Confirmed bookings and blackouts overlapping each occurrence (by index): one query each, whatever the count."""
    slots = _slots(occurrences)
    window = func.tstzrange(slots.c.s, slots.c.e, "[)")

    def per_slot(model, condition, *order) -> dict[int, list]:
        found: dict[int, list] = {}
        query = select(slots.c.n, model).select_from(slots).join(model, and_(condition, model.during.op("&&")(window)))
        for n, row in db.session.execute(query.order_by(slots.c.n, *order)):
            found.setdefault(n, []).append(row)
        return found

    bookings = per_slot(
        Reservation, and_(Reservation.room_id == room_id, Reservation.status == "confirmed"), Reservation.start_time
    )
    blackouts = per_slot(Blackout, or_(Blackout.room_id == room_id, Blackout.room_id.is_(None)), Blackout.start_time, Blackout.id)
    return bookings, blackouts


def _refusals(room_id: int, occurrences: list[Occurrence], closed: dict[Occurrence, str]) -> dict[int, Refusal]:
    bookings, blackouts = _in_the_way(room_id, occurrences)
    refusals = {}
    for n, occurrence in enumerate(occurrences):
        clashes, dark = bookings.get(n, []), blackouts.get(n, [])
        if clashes:
            refusals[n] = Refusal(occurrence, "conflict", "The room is already booked for part of this time.", clashes, dark)
        elif dark:
            refusals[n] = Refusal(occurrence, "blackout", f"The room is blacked out: {dark[0].reason}", [], dark)
        elif occurrence in closed:
            refusals[n] = Refusal(occurrence, "closed", closed[occurrence], [], [])
    return refusals


def _occurrence(series: ReservationSeries, request: SeriesCreate, occurrence: Occurrence) -> Reservation:
    return Reservation(
        room_id=request.room_id,
        user_id=series.user_id,
        title=request.title,
        description=request.description,
        start_time=occurrence.start,
        end_time=occurrence.end,
        attendees=request.attendees,
        status="confirmed",
        series_id=series.id,
        recurrence_id=occurrence.start,
    )


def _flush_or_lost_race() -> None:
    """An insert that met the exclusion constraint lost a race (a rival booking committed after our look):
    `create_series` looks again (`retried`, which also retries after a deadlock)."""
    flush_or_raise({"no_overlapping_reservations": LookAgain})


def _book(principal: Principal, request: SeriesCreate, room, occurrences, closed, settings, now, on_created):
    """One transaction: lock, look at everything in the way at once, book the free occurrences, record events."""
    quota_user = None if principal.is_admin else principal.user_id
    locks.lock_for_series(request.room_id, quota_user)
    refusals = _refusals(request.room_id, occurrences, closed)
    series = ReservationSeries(
        room_id=request.room_id,
        user_id=principal.user_id,
        title=request.title,
        recurrence=request.recurrence,
        timezone=room.timezone or "UTC",
    )
    db.session.add(series)
    db.session.flush()
    booked: list[Reservation] = []
    for n, occurrence in enumerate(occurrences):
        if n in refusals:
            continue
        if quota_user is not None:
            # Quotas count per occurrence: the ones booked just before are flushed, so they count too.
            try:
                services._check_quotas(
                    services.Candidate(request.room_id, occurrence.start, occurrence.end, None, quota_user, room, settings, now)
                )
            except services.QuotaExceeded as exc:
                refusals[n] = Refusal(occurrence, "quota", exc.detail, [], [])
                continue
        booked.append(_occurrence(series, request, occurrence))
        db.session.add(booked[-1])
        if quota_user is not None:
            _flush_or_lost_race()
    if refusals and (request.on_conflict == "fail" or not booked):  # skip with nothing free: no empty series
        db.session.rollback()
        clashes = [refusals[n].clash() for n in sorted(refusals)]
        raise SeriesConflict(
            f"{len(clashes)} of {len(occurrences)} occurrences cannot be booked; nothing was booked.", occurrences=clashes
        )
    _flush_or_lost_race()
    series.skipped = [refusals[n].skipped() for n in sorted(refusals)]
    for reservation in booked:
        services.publish("reservation.created", reservation)
    body = series_body(series, booked)
    record_event(
        services.TOPIC,
        series.id,
        "reservation.series_created",
        {**body, "attendees": list(request.attendees)},
        services.PRODUCER,
    )
    if on_created:
        on_created(body)
    db.session.commit()
    return body


def create_series(principal: Principal, request: SeriesCreate, bearer: str, settings, on_created=None) -> dict:
    """Book every occurrence of the rule (on_conflict fail: all or nothing; skip: the free ones). Returns the series body."""
    start, end = request.start_time, request.end_time
    now = utcnow()
    services.check_times(start, end, now)
    room = services._check_room(settings.rooms.lookup(request.room_id, bearer), len(request.attendees), settings)
    policy = BookingPolicy.of_room(room.booking_policy, settings.default_policy)
    occurrences = expand(
        request.recurrence,
        room.timezone or "UTC",
        start,
        end,
        limit=settings.max_series_occurrences,
        latest_start=now + timedelta(days=policy.horizon_days),
    )
    closed = _closed_or_invalid(room, policy, occurrences, now)
    settings.users.lookup(principal.user_id, bearer)  # learn the owner's e-mail for the notification
    # Network calls are done: from here one transaction per attempt. A rival that committed meanwhile is seen by
    # the next look (fail: its 409; skip: around it).
    return retried(
        lambda: _book(principal, request, room, occurrences, closed, settings, now, on_created),
        attempts=RACE_ATTEMPTS,
        exhausted=_busy,
    )


def _busy() -> NoReturn:
    raise Conflict("The room is being booked by others right now; retry shortly.")


def series_body(series: ReservationSeries, occurrences: list[Reservation]) -> dict:
    return {
        "id": series.id,
        "room_id": series.room_id,
        "user_id": series.user_id,
        "title": series.title,
        "recurrence": series.recurrence,
        "timezone": series.timezone,
        "occurrences": [r.to_dict() for r in occurrences],
        "skipped": list(series.skipped or []),
        "created_at": series.created_at.isoformat(),
    }


def get_series(series_id: int, principal: Principal, *, for_update: bool = False) -> ReservationSeries:
    """Load a series its owner or an admin may see (403 for anyone else)."""
    series = db.session.get(ReservationSeries, series_id, with_for_update=for_update)
    if series is None:
        raise NotFound(f"Series {series_id} does not exist.")
    if not principal.may_act_for(series.user_id):
        raise Forbidden("You may only access your own series.")
    return series


def occurrences_of(series_id: int) -> list[Reservation]:
    stmt = select(Reservation).where(Reservation.series_id == series_id).order_by(Reservation.start_time, Reservation.id)
    return list(db.session.execute(stmt).scalars())


def read_series(series_id: int, principal: Principal) -> dict:
    series = get_series(series_id, principal)
    return series_body(series, occurrences_of(series_id))


def cancel_series(series_id: int, principal: Principal, since: datetime | None) -> int:
    """Cancel the confirmed occurrences starting at or after `since` (never earlier than now), one mail for all."""
    series = get_series(series_id, principal, for_update=True)
    now = utcnow()
    since = max(since, now) if since else now
    stmt = (
        select(Reservation)
        .where(Reservation.series_id == series.id, Reservation.status == "confirmed", Reservation.start_time >= since)
        .order_by(Reservation.start_time, Reservation.id)
        .with_for_update()
    )
    cancelled = list(db.session.execute(stmt).scalars())
    for reservation in cancelled:
        services._cancel(reservation, reason=SERIES_CANCELLATION)
    if cancelled:
        record_event(
            services.TOPIC,
            series.id,
            "reservation.series_cancelled",
            {
                **series_body(series, cancelled),
                "skipped": [],
                "attendees": list(dict.fromkeys(a for r in cancelled for a in r.attendees)),
            },
            services.PRODUCER,
        )
    db.session.commit()
    return len(cancelled)


def told_in_series_mail(event_type: str, data: dict) -> bool:
    """Occurrences booked by a series create, or cancelled by a series cancellation, are told in the one
    series mail (reservation.series_created / series_cancelled), not one mail each."""
    if not data.get("series_id"):
        return False
    if event_type == "reservation.created":
        return True
    return event_type == "reservation.cancelled" and data.get("reason") == SERIES_CANCELLATION
