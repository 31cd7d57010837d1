"""retention: the index the worker forgets old processed-event records by (PROCESSED_EVENTS_RETENTION_HOURS)"""

from alembic import op

from servicekit.db import create_processed_events_index, drop_processed_events_index

revision = "0003_retention"
down_revision = "0002_room_policy"


def upgrade():
    create_processed_events_index(op)


def downgrade():
    drop_processed_events_index(op)
