"""recurring series: reservation_series, reservations.series_id and recurrence_id"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_series"
down_revision = "0004_calendar"


def upgrade():
    op.create_table(
        "reservation_series",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("recurrence", sa.String(500), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("skipped", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reservation_series"),
    )
    op.create_index("ix_reservation_series_user_id", "reservation_series", ["user_id"])
    op.add_column("reservations", sa.Column("recurrence_id", sa.DateTime(timezone=True)))
    op.add_column("reservations", sa.Column("series_id", sa.BigInteger()))
    op.create_foreign_key("fk_reservations_series_id", "reservations", "reservation_series", ["series_id"], ["id"])
    op.create_index(
        "ix_reservations_series_start",
        "reservations",
        ["series_id", "start_time"],
        postgresql_where=sa.text("series_id IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_reservations_series_start", table_name="reservations")
    op.drop_constraint("fk_reservations_series_id", "reservations", type_="foreignkey")
    op.drop_column("reservations", "series_id")
    op.drop_column("reservations", "recurrence_id")
    op.drop_table("reservation_series")
