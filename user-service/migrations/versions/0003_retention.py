"""retention: the indexes the worker forgets old rows by (processed-event records, refresh tokens a day past
their expiry)"""

from alembic import op

from servicekit.db import create_index_concurrently, create_processed_events_index, drop_processed_events_index

revision = "0003_retention"
down_revision = "0002_security"


def upgrade():
    create_processed_events_index(op)
    create_index_concurrently(op, "ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])


def downgrade():
    op.drop_index("ix_refresh_tokens_expires_at", table_name="refresh_tokens")
    drop_processed_events_index(op)
