"""user-service tables: users, refresh tokens, login attempts and the booking read model."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from servicekit.db import db


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False, server_default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    # Access tokens issued before this are refused here, whatever the user's state now: set by a deactivation
    # and by a role change (the other services keep the same cut-off from `user-events`, servicekit.auth), so
    # a reactivation or a role changed back does not bring older tokens back to life.
    sessions_revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role_known"),)

    # Which of the writable fields (the update schema's allow-list) only an admin may write.
    ADMIN_WRITABLE = frozenset({"role", "is_active"})

    # What a user's JSON shows (never password_hash), in order.
    PUBLIC = ("id", "email", "full_name", "role", "is_active", "created_at")

    def to_dict(self) -> dict:
        return user_dict(self)


def user_dict(user) -> dict:
    """A user as JSON: from a `User`, or from a row of `User.PUBLIC` columns (the caller's, read by the
    revocation check without an ORM object)."""
    return {
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": user.created_at.isoformat(),
    }


class RefreshToken(db.Model):
    """One refresh token; tokens rotated from one login share a family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    family_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # What the worker forgets tokens by (services.purge_expired_refresh_tokens).
    __table_args__ = (Index("ix_refresh_tokens_expires_at", "expires_at"),)


class AuthThrottle(db.Model):
    """Consecutive failed password checks per account and client address, for growing delays.

    `scope` is `login` (account = the e-mail, known or not, so a delay reveals nothing) or
    `current_password` (account = the user id, for `PUT /api/users/{id}`). Keyed per client too,
    so an attacker's failures never slow the owner down from another address."""

    __tablename__ = "auth_throttles"

    scope: Mapped[str] = mapped_column(String(20), primary_key=True)
    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))

    __table_args__ = (Index("ix_auth_throttles_updated_at", "updated_at"),)


class BookingRecord(db.Model):
    """A user's reservation as seen on `reservation-events`: the source of booking statistics."""

    __tablename__ = "booking_records"

    reservation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)

    __table_args__ = (Index("ix_booking_records_user_start", "user_id", "start_time"),)
