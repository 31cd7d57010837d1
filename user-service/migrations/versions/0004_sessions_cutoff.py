"""sessions cut-off: `users.sessions_revoked_at`, before which a user's access tokens are refused by user-service
(set by a deactivation or a role change), so a reactivation does not bring older tokens back to life

Users deactivated now get the migration's time: whatever they held before stays refused after a reactivation.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_sessions_cutoff"
down_revision = "0003_retention"


def upgrade():
    op.add_column("users", sa.Column("sessions_revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE users SET sessions_revoked_at = now() WHERE NOT is_active")


def downgrade():
    op.drop_column("users", "sessions_revoked_at")
