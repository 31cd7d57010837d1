"""Business rules of accounts and sessions. No Flask here: callers pass what they know."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from servicekit.auth import Principal
from servicekit.db import db, like_substring, utcnow
from servicekit.events import record_event
from servicekit.problems import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, ValidationFailed

from .models import BookingRecord, LoginAttempts, RefreshToken, User
from .schemas import RegisterRequest, UserUpdate
from .tokens import KeyRing, hash_refresh_token, new_refresh_token

TOPIC = "user-events"
PRODUCER = "user-service"
hasher = PasswordHasher()
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


def publish_user_event(event_type: str, user: User) -> None:
    record_event(TOPIC, user.id, event_type, user.to_dict(), PRODUCER)


def register_user(request: RegisterRequest) -> User:
    user = User(email=request.email, full_name=request.full_name, password_hash=hasher.hash(request.password), role="user")
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("An account with this e-mail already exists.") from None
    db.session.refresh(user)
    publish_user_event("user.registered", user)
    db.session.commit()
    return user


def _issue_tokens(user: User, settings: TokenSettings, family_id: str | None = None) -> dict:
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


def _locked_for(attempts: LoginAttempts | None, now: datetime) -> int:
    if attempts is None or attempts.locked_until is None or attempts.locked_until <= now:
        return 0
    return int((attempts.locked_until - now).total_seconds()) + 1


def login(email: str, password: str, settings: TokenSettings) -> dict:
    """Tokens for valid credentials. Repeated failures for one e-mail lock it (429), known or not."""
    email = email.strip().lower()
    now = utcnow()
    attempts = db.session.get(LoginAttempts, email, with_for_update=True)
    retry_after = _locked_for(attempts, now)
    if retry_after:
        db.session.rollback()
        raise TooManyRequests("Too many failed logins for this account; try again later.", retry_after=retry_after)
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if not _password_matches(user, password):
        _record_failure(email, now, settings)
        raise Unauthorized(INVALID_CREDENTIALS)
    if attempts is not None:
        db.session.delete(attempts)
    if not user.is_active:
        db.session.commit()
        raise Forbidden("This account is deactivated.")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    tokens = _issue_tokens(user, settings)
    db.session.commit()
    return tokens


def _record_failure(email: str, now: datetime, settings: TokenSettings) -> None:
    failures = db.session.execute(
        insert(LoginAttempts)
        .values(email=email, failures=1)
        .on_conflict_do_update(index_elements=[LoginAttempts.email], set_={"failures": LoginAttempts.failures + 1})
        .returning(LoginAttempts.failures)
    ).scalar_one()
    if failures >= settings.max_failures:
        db.session.execute(
            update(LoginAttempts)
            .where(LoginAttempts.email == email)
            .values(failures=0, locked_until=now + timedelta(seconds=settings.lockout_seconds))
        )
    db.session.commit()


def _password_matches(user: User | None, password: str) -> bool:
    try:
        return hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


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


def get_user(user_id: int, *, for_update: bool = False) -> User:
    user = db.session.get(User, user_id, with_for_update=for_update)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def update_user(user_id: int, changes: UserUpdate, principal: Principal) -> User:
    """Apply a PUT: the caller must be the user or an admin; role/is_active are admin-only."""
    sent = changes.model_fields_set
    if principal.user_id != user_id and not principal.is_admin:
        raise Forbidden("You may only change your own account.")
    if sent & User.ADMIN_WRITABLE and not principal.is_admin:
        raise Forbidden("Only an administrator may change role or is_active.")
    user = get_user(user_id, for_update=True)
    if principal.user_id == user_id and (changes.role == "user" or changes.is_active is False):
        raise Conflict("Administrators cannot demote or deactivate themselves.")
    if "password" in sent and changes.password is not None:
        if principal.user_id == user_id:
            if not changes.current_password or not _password_matches(user, changes.current_password):
                raise ValidationFailed.single("current_password", "The current password is required and must match.")
        user.password_hash = hasher.hash(changes.password)
        revoke_all_sessions(user.id)
    elif "current_password" in sent:
        raise ValidationFailed.single("current_password", "Only sent together with password.")
    for name in ("full_name", "role", "is_active"):
        if name in sent and getattr(changes, name) is None:
            raise ValidationFailed.single(name, "Must not be null.")
    was_active = user.is_active
    touched = False
    for name in ("full_name", "role", "is_active"):
        if name in sent and getattr(user, name) != getattr(changes, name):
            setattr(user, name, getattr(changes, name))
            touched = True
    if touched or "password" in sent:
        user.updated_at = utcnow()
        db.session.flush()
        publish_user_event("user.updated", user)
        if was_active and not user.is_active:
            revoke_all_sessions(user.id)
            publish_user_event("user.deactivated", user)
    db.session.commit()
    return user


def list_users(query) -> tuple:
    stmt = select(User).order_by(User.id)
    if query.role is not None:
        stmt = stmt.where(User.role == query.role)
    if query.is_active is not None:
        stmt = stmt.where(User.is_active == query.is_active)
    if query.q:
        pattern = like_substring(query.q)
        stmt = stmt.where(or_(User.email.like(pattern), func.lower(User.full_name).like(pattern)))
    return stmt


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


def ensure_admin(email: str, password: str) -> User:
    """Make sure the first admin exists (idempotent; an existing account is promoted and activated)."""
    email = email.strip().lower()
    user = db.session.execute(select(User).where(User.email == email).with_for_update()).scalar_one_or_none()
    if user is None:
        user = User(email=email, full_name="Administrator", password_hash=hasher.hash(password), role="admin")
        db.session.add(user)
        db.session.flush()
        db.session.refresh(user)
        publish_user_event("user.registered", user)
    elif user.role != "admin" or not user.is_active:
        user.role, user.is_active, user.updated_at = "admin", True, utcnow()
        db.session.flush()
        publish_user_event("user.updated", user)
    db.session.commit()
    return user
