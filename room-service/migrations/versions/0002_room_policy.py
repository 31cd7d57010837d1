"""rooms: time zone and booking policy"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_room_policy"
down_revision = "0001"

# Rooms that exist keep today's behaviour: always open, 5 minutes to 12 hours, a year ahead.
DEFAULT_POLICY = '{"open_hours": null, "min_minutes": 5, "max_minutes": 720, "horizon_days": 365, "auto_release": false}'


def upgrade():
    op.add_column("rooms", sa.Column("timezone", sa.String(64), server_default="UTC", nullable=False))
    op.add_column(
        "rooms",
        sa.Column("booking_policy", postgresql.JSONB(), server_default=sa.text(f"'{DEFAULT_POLICY}'::jsonb"), nullable=False),
    )


def downgrade():
    op.drop_column("rooms", "booking_policy")
    op.drop_column("rooms", "timezone")
