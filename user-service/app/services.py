"""Business rules of accounts and sessions. No Flask here: callers pass what they know."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from servicekit.auth import Principal
from servicekit.db import db, delete_in_batches, flush_or_raise, like_substring, utcnow
from servicekit.events import record_event
from servicekit.pagination import FilteredList
from servicekit.problems import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, ValidationFailed

from .models import AuthThrottle, BookingRecord, RefreshToken, User, user_dict
from .passwords import BoundedHasher
from .schemas import RegisterRequest, UserListQuery, UserUpdate
from .tokens import KeyRing, hash_refresh_token, new_refresh_token, token_time

TOPIC = "user-events"
PRODUCER = "user-service"
hasher = BoundedHasher()
# Verified against when the e-mail is unknown, so both failures take the same time.
_DUMMY_HASH = hasher.hash("not a real password")

INVALID_CREDENTIALS = "The e-mail or password is incorrect."


@dataclass(frozen=True)
class TokenSettings:
    keys: KeyRing
    issuer: str
    audience: str
    access_ttl: int
    refresh_ttl: int
    max_failures: int
    lockout_seconds: int


def publish(event_type: str, user: User, **extra) -> None:
    record_event(TOPIC, user.id, event_type, {**user.to_dict(), **extra}, PRODUCER)


def register_user(request: RegisterRequest) -> User:
    user = User(email=request.email, full_name=request.full_name, password_hash=hasher.hash(request.password), role="user")
    db.session.add(user)
    flush_or_raise({"uq_users_email": lambda: Conflict("An account with this e-mail already exists.")})
    db.session.refresh(user)
    publish("user.registered", user)
    db.session.commit()
    return user


def _issue_tokens(user: User, settings: TokenSettings, family_id: str | None = None) -> dict:
    # The role and state the tokens carry are read under a share lock: a role change or deactivation (which
    # holds the row FOR UPDATE and stamps its revocation cut-off after taking it) either commits first and is
    # seen here, or waits until these tokens exist, so they fall before its cut-off.
    user = db.session.get(User, user.id, with_for_update={"read": True}, populate_existing=True)
    if user is None or not user.is_active:
        raise Forbidden("This account is deactivated.")
    token, digest = new_refresh_token()
    db.session.add(
        RefreshToken(
            token_hash=digest,
            family_id=family_id or str(uuid.uuid4()),
            user_id=user.id,
            expires_at=utcnow() + timedelta(seconds=settings.refresh_ttl),
        )
    )
    access = settings.keys.issue_access_token(
        user_id=user.id, role=user.role, issuer=settings.issuer, audience=settings.audience, ttl=settings.access_ttl
    )
    return {"access_token": access, "refresh_token": token, "token_type": "Bearer", "expires_in": settings.access_ttl}


def _blocked_for(scope: str, account: str, client: str, now: datetime) -> int:
    """Seconds this client must still wait before trying this account again (0: go ahead). The row stays
    locked until the attempt is counted, so parallel guesses from one client are taken one at a time."""
    throttle = db.session.get(AuthThrottle, (scope, account, client), with_for_update=True)
    if throttle is None or throttle.blocked_until is None or throttle.blocked_until <= now:
        return 0
    return int((throttle.blocked_until - now).total_seconds()) + 1


def _record_failure(scope: str, account: str, client: str, now: datetime, settings: TokenSettings) -> None:
    """Count a failed password check; from `max_failures` on, each failure doubles this client's wait
    on this account (1 s, 2 s, 4 s, ... up to `lockout_seconds`). Committed at once."""
    failures = db.session.execute(
        insert(AuthThrottle)
        .values(scope=scope, account=account, client=client, failures=1, updated_at=now)
        .on_conflict_do_update(
            index_elements=[AuthThrottle.scope, AuthThrottle.account, AuthThrottle.client],
            set_={"failures": AuthThrottle.failures + 1, "updated_at": now},
        )
        .returning(AuthThrottle.failures)
    ).scalar_one()
    if failures >= settings.max_failures:
        delay = min(2 ** min(failures - settings.max_failures, 30), settings.lockout_seconds)
        db.session.execute(
            update(AuthThrottle)
            .where(AuthThrottle.scope == scope, AuthThrottle.account == account, AuthThrottle.client == client)
            .values(blocked_until=now + timedelta(seconds=delay))
        )
    db.session.commit()


def purge_old_throttles() -> int:
    """Worker job: forget throttle rows a day after their last failure (their delay is long over)."""
    return delete_in_batches(AuthThrottle, AuthThrottle.updated_at < utcnow() - timedelta(days=1))


def purge_expired_refresh_tokens() -> int:
    """Worker job: forget refresh tokens a day after they expired (every login and every refresh adds one).

    Such a token is refused as invalid instead of as expired. Reusing it no longer revokes its family, but
    it opens nothing either: every token rotated from it expires later and still is detected on reuse."""
    return delete_in_batches(RefreshToken, RefreshToken.expires_at < utcnow() - timedelta(days=1))


def _forget_failures(scope: str, account: str, client: str) -> None:
    db.session.execute(
        delete(AuthThrottle).where(AuthThrottle.scope == scope, AuthThrottle.account == account, AuthThrottle.client == client)
    )


def login(email: str, password: str, settings: TokenSettings, client: str) -> dict:
    """Tokens for valid credentials. Repeated failures for one e-mail from one client address slow that
    client down on that e-mail (429 with Retry-After, growing), known e-mail or not; the owner, from
    another address, is not affected."""
    email = email.strip().lower()
    now = utcnow()
    retry_after = _blocked_for("login", email, client, now)
    if retry_after:
        db.session.rollback()
        raise TooManyRequests(
            "Too many failed logins for this account from your address; try again later.", retry_after=retry_after
        )
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if not _password_matches(user, password):
        _record_failure("login", email, client, now, settings)
        raise Unauthorized(INVALID_CREDENTIALS)
    _forget_failures("login", email, client)
    if not user.is_active:
        db.session.commit()
        raise Forbidden("This account is deactivated.")
    if hasher.needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    tokens = _issue_tokens(user, settings)
    db.session.commit()
    return tokens


def _password_matches(user: User | None, password: str) -> bool:
    return hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None


def _revoke_family(family_id: str) -> None:
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


def revoke_all_sessions(user_id: int) -> None:
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


def refresh(token: str, settings: TokenSettings) -> dict:
    """Rotate a refresh token. Reusing a rotated token revokes its whole family (stolen-token detection)."""
    stored = db.session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token)).with_for_update()
    ).scalar_one_or_none()
    if stored is None:
        raise Unauthorized("The refresh token is invalid.")
    if stored.used_at is not None or stored.revoked_at is not None:
        if stored.used_at is not None:
            _revoke_family(stored.family_id)
            db.session.commit()
        raise Unauthorized("The refresh token has already been used or revoked.")
    if stored.expires_at <= utcnow():
        raise Unauthorized("The refresh token has expired.")
    user = db.session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("This account is deactivated.")
    stored.used_at = utcnow()
    tokens = _issue_tokens(user, settings, family_id=stored.family_id)
    db.session.commit()
    return tokens


def logout(token: str) -> None:
    stored = db.session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    ).scalar_one_or_none()
    if stored is None:
        raise Unauthorized("The refresh token is invalid.")
    _revoke_family(stored.family_id)
    db.session.commit()


def user_body(user, principal: Principal) -> dict:
    """The user (a `User`, or a row of its public columns) as `principal` may see it: admins also see its
    booking statistics."""
    body = user_dict(user)
    if principal.is_admin:
        body["booking_stats"] = booking_stats([user.id])[user.id]
    return body


def read_user(user_id: int, principal: Principal, *, caller_row=None) -> dict:
    """One user, for themselves or an admin (anyone else: 403). `caller_row`: the caller's own row, if this
    request already read it (the revocation check did)."""
    if not principal.may_act_for(user_id):
        raise Forbidden("You may only access your own resources.")
    known = caller_row is not None and caller_row.id == user_id
    return user_body(caller_row if known else get_user(user_id), principal)


def get_user(user_id: int, *, for_update: bool = False) -> User:
    # Locking re-reads the row: the caller's row, loaded by the revocation check, may be stale by then.
    user = db.session.get(User, user_id, with_for_update=for_update, populate_existing=for_update)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def update_user(user_id: int, changes: UserUpdate, principal: Principal, settings: TokenSettings, client: str) -> User:
    """Apply a PUT: the caller must be the user or an admin; role/is_active are admin-only. Wrong
    `current_password`s are throttled like logins (per account and client)."""
    sent = changes.model_fields_set
    if not principal.may_act_for(user_id):
        raise Forbidden("You may only change your own account.")
    if sent & User.ADMIN_WRITABLE and not principal.is_admin:
        raise Forbidden("Only an administrator may change role or is_active.")
    user = get_user(user_id, for_update=True)
    if principal.user_id == user_id and (changes.role == "user" or changes.is_active is False):
        raise Conflict("Administrators cannot demote or deactivate themselves.")
    password_changed = "password" in sent and changes.password is not None
    if password_changed:
        if principal.user_id == user_id:
            now = utcnow()
            retry_after = _blocked_for("current_password", str(user_id), client, now)
            if retry_after:
                db.session.rollback()
                raise TooManyRequests("Too many wrong current passwords; try again later.", retry_after=retry_after)
            if not changes.current_password or not _password_matches(user, changes.current_password):
                _record_failure("current_password", str(user_id), client, now, settings)
                raise ValidationFailed.single("current_password", "The current password is required and must match.")
            _forget_failures("current_password", str(user_id), client)
        user.password_hash = hasher.hash(changes.password)
        revoke_all_sessions(user.id)
    elif "current_password" in sent:
        raise ValidationFailed.single("current_password", "Only sent together with password.")
    was_active = user.is_active
    role_changed = "role" in sent and changes.role is not None and changes.role != user.role
    touched = False
    for name in ("full_name", "role", "is_active"):
        if name in sent and getattr(user, name) != getattr(changes, name):
            setattr(user, name, getattr(changes, name))
            touched = True
    if touched or password_changed:
        user.updated_at = utcnow()
        # A role change or a deactivation revokes the user's older access tokens in every service (here by
        # `sessions_revoked_at`, elsewhere by servicekit.auth's cut-offs). The cut-off is the next token tick: a
        # token stamped in the same 1/1024 s as the change is refused too.
        cutoff = token_time(utcnow()) + timedelta(microseconds=977)
        if role_changed or (was_active and not user.is_active):
            user.sessions_revoked_at = cutoff
        db.session.flush()
        extra = {"sessions_revoked_at": cutoff.isoformat()} if role_changed else {}
        publish("user.updated", user, **extra)
        if was_active and not user.is_active:
            revoke_all_sessions(user.id)
            publish("user.deactivated", user)
    db.session.commit()
    return user


_USERS = FilteredList(
    lambda: select(User).order_by(User.id),
    role=lambda: User.role == bindparam("role"),
    is_active=lambda: User.is_active == bindparam("is_active"),
    q=lambda: or_(User.email.like(bindparam("q")), func.lower(User.full_name).like(bindparam("q"))),  # a LIKE pattern
)


def list_users(query: UserListQuery) -> dict:
    """A page of users by id, each with its booking statistics (one query for the page)."""
    values = {"role": query.role, "is_active": query.is_active, "q": like_substring(query.q) if query.q else None}
    page = _USERS.page(db.session, query, values, lambda user: user)
    stats = booking_stats([user.id for user in page["items"]])
    page["items"] = [{**user.to_dict(), "booking_stats": stats[user.id]} for user in page["items"]]
    return page


def booking_stats(user_ids: list[int]) -> dict[int, dict]:
    """Booking statistics per user from the reservation-events read model."""
    now = utcnow()
    confirmed = BookingRecord.status == "confirmed"
    rows = db.session.execute(
        select(
            BookingRecord.user_id,
            func.count(),
            func.count().filter(confirmed),
            func.count().filter(confirmed, BookingRecord.start_time > now),
            func.count().filter(BookingRecord.status == "cancelled"),
        )
        .where(BookingRecord.user_id.in_(user_ids))
        .group_by(BookingRecord.user_id)
    ).all()
    stats = {
        uid: {"total_reservations": 0, "confirmed_reservations": 0, "upcoming_reservations": 0, "cancelled_reservations": 0}
        for uid in user_ids
    }
    for user_id, total, conf, upcoming, cancelled in rows:
        stats[user_id] = {
            "total_reservations": total,
            "confirmed_reservations": conf,
            "upcoming_reservations": upcoming,
            "cancelled_reservations": cancelled,
        }
    return stats


def active_admin_exists() -> bool:
    return db.session.execute(select(User.id).where(User.role == "admin", User.is_active.is_(True)).limit(1)).first() is not None


def ensure_admin(email: str, password: str) -> User | None:
    """Bootstrap the first admin: create the account if no account has this e-mail yet. An existing
    account is never changed (an admin deactivated or demoted on purpose stays so, and an account
    someone registered under this e-mail is not promoted). Returns the created admin, else None."""
    email = email.strip().lower()
    if db.session.execute(select(User.id).where(User.email == email)).first() is not None:
        db.session.rollback()
        return None
    user = User(email=email, full_name="Administrator", password_hash=hasher.hash(password), role="admin")
    db.session.add(user)
    try:
        flush_or_raise({"uq_users_email": lambda: Conflict(email)})
    except Conflict:  # created meanwhile by another replica starting up
        return None
    db.session.refresh(user)
    publish("user.registered", user)
    db.session.commit()
    return user
