"""room-service tables: rooms (soft-deleted) and equipment (its own table, many-to-many)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicekit.db import db

DEFAULT_POLICY = {"open_hours": None, "min_minutes": 5, "max_minutes": 720, "horizon_days": 365, "auto_release": False}
DEFAULT_POLICY_JSON = json.dumps(DEFAULT_POLICY)

room_equipment = Table(
    "room_equipment",
    db.metadata,
    Column("room_id", BigInteger, ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True),
    Column("equipment_id", BigInteger, ForeignKey("equipment.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_room_equipment_equipment_id", "equipment_id"),
)


class Equipment(db.Model):
    __tablename__ = "equipment"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(50), unique=True, nullable=False)  # normalised: trimmed, lower case


class Room(db.Model):
    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False)
    location: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")  # IANA name
    # {"open_hours", "min_minutes", "max_minutes", "horizon_days", "auto_release"}, validated by schemas.BookingPolicy
    booking_policy: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text(f"'{DEFAULT_POLICY_JSON}'::jsonb"))
    equipment: Mapped[list[Equipment]] = relationship(secondary=room_equipment, lazy="selectin", order_by=Equipment.name)

    __table_args__ = (
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        # Names are unique among rooms that exist, case-insensitively; a deleted room's name is free again.
        Index("uq_rooms_name_live", func.lower(name), unique=True, postgresql_where=text("deleted_at IS NULL")),
    )

    def to_dict(self, equipment: list[str] | None = None) -> dict:
        """The room as the API shows it. Also called with a row of `services.list_rooms` (same attributes,
        `equipment` given): a page is built without loading ORM objects."""
        return {
            "id": self.id,
            "name": self.name,
            "capacity": self.capacity,
            "location": self.location,
            "equipment": sorted(equipment if equipment is not None else (item.name for item in self.equipment)),
            "description": self.description,
            "is_active": self.is_active,
            "timezone": self.timezone,
            "booking_policy": dict(self.booking_policy),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
