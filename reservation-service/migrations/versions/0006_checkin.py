"""check-in and auto-release (reservations.checked_in_at, status released), the waitlist"""

import sqlalchemy as sa
from alembic import op

revision = "0006_checkin"
down_revision = "0005_series"


def upgrade():
    op.add_column("reservations", sa.Column("checked_in_at", sa.DateTime(timezone=True)))
    op.drop_constraint("ck_reservations_status_known", "reservations", type_="check")
    op.create_check_constraint("ck_reservations_status_known", "reservations", "status IN ('confirmed', 'cancelled', 'released')")
    op.create_index(
        "ix_reservations_unchecked_start",
        "reservations",
        ["start_time"],
        postgresql_where=sa.text("status = 'confirmed' AND checked_in_at IS NULL"),
    )
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), server_default="waiting", nullable=False),
        sa.Column("reservation_id", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_waitlist_entries"),
        sa.CheckConstraint("end_time > start_time", name="ck_waitlist_entries_ends_after_start"),
        sa.CheckConstraint("status IN ('waiting', 'booked', 'expired')", name="ck_waitlist_entries_status_known"),
    )
    op.create_index("ix_waitlist_entries_user_id", "waitlist_entries", ["user_id", "id"])
    op.create_index(
        "ix_waitlist_entries_waiting", "waitlist_entries", ["room_id", "id"], postgresql_where=sa.text("status = 'waiting'")
    )


def downgrade():
    op.drop_table("waitlist_entries")
    op.drop_index("ix_reservations_unchecked_start", table_name="reservations")
    op.execute("UPDATE reservations SET status = 'cancelled' WHERE status = 'released'")
    op.drop_constraint("ck_reservations_status_known", "reservations", type_="check")
    op.create_check_constraint("ck_reservations_status_known", "reservations", "status IN ('confirmed', 'cancelled')")
    op.drop_column("reservations", "checked_in_at")
