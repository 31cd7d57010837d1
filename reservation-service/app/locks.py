"""Transaction-level advisory locks that make blackouts and quotas race-free.

Why this is sound (PostgreSQL READ COMMITTED, each statement sees what committed before it began):
- A booking (create, or a move in an update) takes, in this order, the *every room* lock SHARED,
  its room's lock SHARED and, when a quota applies, its owner's lock EXCLUSIVE, all before it reads
  blackouts, conflicts or usage, and holds them until it commits.
- Creating a blackout takes its room's lock (or, for every room, the *every room* lock) EXCLUSIVE
  before it inserts the blackout and selects the reservations to cancel, and holds it until it commits.
So a booking and a blackout on the same room never overlap in time: either the booking committed
first, and the blackout's later cancel query sees (and cancels) it; or the blackout committed first,
and the booking's later blackout check sees it (409). Bookings of one room share their lock, so
they still run side by side (the exclusion constraint settles clashes among them). Two bookings of
one user serialise on the user lock, so the quota check and the insert of one cannot interleave
with the other's. A recurring series takes its room's lock EXCLUSIVE instead (`lock_for_series`): its many
inserts would otherwise wait on another booking's uncommitted rows in any order, and two series could
deadlock; so a series of a room runs alone, and single bookings of that room wait for it. Everyone acquires in the same order (every room, room, user; a blackout takes a
single lock) and before any row lock, so these locks add no deadlock.

Keys are (namespace, id mod 2^31 - 1): two ids sharing a key only serialise a little more.
A booking's locks are taken in one statement (one round trip), still in that order; the reads
come in a later statement, whose snapshot therefore sees everything committed before the locks
were granted.
"""

from __future__ import annotations

from sqlalchemy import text

from servicekit.db import db

EVERY_ROOM = 0x5200
ROOM = 0x5201
USER = 0x5202
_KEY_SPACE = 2_147_483_647

_SHARED = "pg_advisory_xact_lock_shared(CAST(:space{n} AS integer), CAST(:key{n} AS integer))"
_EXCLUSIVE = "pg_advisory_xact_lock(CAST(:space{n} AS integer), CAST(:key{n} AS integer))"


def _calls(*locks: tuple[str, int, int]) -> tuple[str, dict]:
    """The calls that take `locks` ((function, namespace, id), ...), as a SELECT's target list, and their
    parameters. PostgreSQL evaluates a target list left to right, and each call returns once its lock is held."""
    calls = ", ".join(function.format(n=n) for n, (function, _space, _key) in enumerate(locks))
    parameters = {}
    for n, (_function, space, key) in enumerate(locks):
        parameters[f"space{n}"] = space
        parameters[f"key{n}"] = key % _KEY_SPACE
    return calls, parameters


def _take(*locks: tuple[str, int, int]) -> None:
    """Take `locks` in one round trip, in the order given."""
    calls, parameters = _calls(*locks)
    db.session.execute(text(f"SELECT {calls}"), parameters)


def _booking_locks(room_id: int, quota_user_id: int | None) -> list[tuple[str, int, int]]:
    locks = [(_SHARED, EVERY_ROOM, 0), (_SHARED, ROOM, room_id)]
    if quota_user_id is not None:
        locks.append((_EXCLUSIVE, USER, quota_user_id))
    return locks


def lock_for_booking(room_id: int, quota_user_id: int | None) -> None:
    """Before a booking reads blackouts, conflicts and usage (in the booking's transaction)."""
    _take(*_booking_locks(room_id, quota_user_id))


def booking_lock_calls(room_id: int, quota_user_id: int | None) -> tuple[str, dict]:
    """`lock_for_booking`'s calls and parameters, for a statement that reads something else beside them (its
    reads see what committed before the statement began, so not blackouts, conflicts or usage)."""
    return _calls(*_booking_locks(room_id, quota_user_id))


def lock_for_series(room_id: int, quota_user_id: int | None) -> None:
    """Before a series reads what is in the way: as `lock_for_booking`, but alone on its room."""
    locks = [(_SHARED, EVERY_ROOM, 0), (_EXCLUSIVE, ROOM, room_id)]
    if quota_user_id is not None:
        locks.append((_EXCLUSIVE, USER, quota_user_id))
    _take(*locks)


def lock_for_blackout(room_id: int | None) -> None:
    """Before a blackout is inserted and its overlapping reservations cancelled."""
    if room_id is None:
        _take((_EXCLUSIVE, EVERY_ROOM, 0))
    else:
        _take((_EXCLUSIVE, ROOM, room_id))
