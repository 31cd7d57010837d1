"""indexes for every filter of GET /api/reservations, in its order (start_time, id)"""

from alembic import op

revision = "0003_list_indexes"
down_revision = "0002_policies"

# (name, columns): user_id is served by ix_reservations_user_start from 0001.
INDEXES = (
    ("ix_reservations_start_id", ["start_time", "id"]),
    ("ix_reservations_room_start", ["room_id", "start_time", "id"]),
    ("ix_reservations_status_start", ["status", "start_time", "id"]),
)


def upgrade():
    for name, columns in INDEXES:
        op.create_index(name, "reservations", columns)


def downgrade():
    for name, _columns in INDEXES:
        op.drop_index(name, table_name="reservations")
