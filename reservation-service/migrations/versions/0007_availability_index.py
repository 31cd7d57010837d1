"""a GiST index on confirmed bookings, time first (room second, for index-only scans): "which rooms are
busy in this window" (availability, suggestions) reads it instead of the (room_id, during) exclusion index"""

import sqlalchemy as sa
from alembic import op

revision = "0007_availability_index"
down_revision = "0006_checkin"


def upgrade():
    op.create_index(
        "ix_reservations_during_confirmed",
        "reservations",
        ["during", "room_id"],
        postgresql_using="gist",
        postgresql_where=sa.text("status = 'confirmed'"),
    )


def downgrade():
    op.drop_index("ix_reservations_during_confirmed", table_name="reservations")
