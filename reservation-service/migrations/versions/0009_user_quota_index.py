"""fair use: a GiST index of confirmed bookings keyed on (user_id, during).

The quota check asks, per booking, how many confirmed bookings the user holds that have not started, and how
many seconds they hold in each ISO week the booking touches. Through the btree (user_id, start_time) index a
week's sum read every booking the user ever made before that week's end, and the planner, with statistics a
few thousand rows behind, read every confirmed booking in the table; either grows with history. Through this
index a week's sum reads that week's bookings, and the count of upcoming ones stops at MAX_FUTURE_BOOKINGS
(it is a capped count)."""

import sqlalchemy as sa
from alembic import op

revision = "0009_user_quota_index"
down_revision = "0008_finding"


def upgrade():
    op.create_index(
        "ix_reservations_user_during_confirmed",
        "reservations",
        ["user_id", "during"],
        postgresql_using="gist",
        postgresql_where=sa.text("status = 'confirmed'"),
    )


def downgrade():
    op.drop_index("ix_reservations_user_during_confirmed", table_name="reservations")
