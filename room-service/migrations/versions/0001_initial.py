"""rooms, equipment and the kit's tables"""

import sqlalchemy as sa
from alembic import op

from servicekit.db import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "rooms",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(200), server_default="", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("capacity >= 1", name="ck_rooms_capacity_positive"),
        sa.PrimaryKeyConstraint("id", name="pk_rooms"),
    )
    # Names are unique among rooms that exist, case-insensitively; a deleted room's name is free again.
    op.execute("CREATE UNIQUE INDEX uq_rooms_name_live ON rooms (lower(name)) WHERE deleted_at IS NULL")
    op.create_table(
        "equipment",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_equipment"),
        sa.UniqueConstraint("name", name="uq_equipment_name"),
    )
    op.create_table(
        "room_equipment",
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("equipment_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name="fk_room_equipment_room_id_rooms", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["equipment_id"], ["equipment.id"], name="fk_room_equipment_equipment_id_equipment", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("room_id", "equipment_id", name="pk_room_equipment"),
    )
    op.create_index("ix_room_equipment_equipment_id", "room_equipment", ["equipment_id"])
    create_kit_tables(op)


def downgrade():
    drop_kit_tables(op)
    op.drop_table("room_equipment")
    op.drop_table("equipment")
    op.drop_table("rooms")
