"""finding a room: the time-first GiST index of confirmed bookings becomes an index on the expression
tstzrange(start_time, end_time, '[)') instead of the `during` column.

PostgreSQL costs the two GiST indexes on (during, room_id) and (room_id, during) alike, whatever their column
order, and chose the time-first one for per-room questions too: free/busy of 50 rooms over 7 days read 6,950
index pages through it instead of 254 through the exclusion constraint's (room_id, during) index. Indexed on
the expression, it serves only the queries that ask by that expression ("which rooms are busy at this time":
availability and suggestions, app/availability.py); everything asked per room by `during` uses the room-first
exclusion index again."""

import sqlalchemy as sa
from alembic import op

revision = "0008_finding"
down_revision = "0007_availability_index"


def upgrade():
    op.drop_index("ix_reservations_during_confirmed", table_name="reservations")
    op.create_index(
        "ix_reservations_time_room_confirmed",
        "reservations",
        [sa.text("tstzrange(start_time, end_time, '[)')"), "room_id"],
        postgresql_using="gist",
        postgresql_where=sa.text("status = 'confirmed'"),
    )


def downgrade():
    op.drop_index("ix_reservations_time_room_confirmed", table_name="reservations")
    op.create_index(
        "ix_reservations_during_confirmed",
        "reservations",
        ["during", "room_id"],
        postgresql_using="gist",
        postgresql_where=sa.text("status = 'confirmed'"),
    )
