"""room-service tables: rooms (soft-deleted) and equipment (its own table, many-to-many)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Column, DateTime, ForeignKey, Integer, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicekit.db import db

room_equipment = Table(
    "room_equipment",
    db.metadata,
    Column("room_id", BigInteger, ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True),
    Column("equipment_id", BigInteger, ForeignKey("equipment.id", ondelete="CASCADE"), primary_key=True),
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
    equipment: Mapped[list[Equipment]] = relationship(secondary=room_equipment, lazy="selectin", order_by=Equipment.name)

    __table_args__ = (CheckConstraint("capacity >= 1", name="capacity_positive"),)

    # What a request may write (no mass assignment); everything else is the service's.
    WRITABLE = frozenset({"name", "capacity", "location", "equipment", "description", "is_active"})

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
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
