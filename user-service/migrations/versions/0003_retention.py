"""retention: the indexes the worker forgets old rows by (processed-event records, refresh tokens a day past
their expiry)"""

from alembic import op

from servicekit.db import create_processed_events_index, drop_processed_events_index

revision = "0003_retention"
down_revision = "0002_security"


def upgrade():
    create_processed_events_index(op)
    with op.get_context().autocommit_block():  # logins and refreshes keep writing while it builds
        op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"], postgresql_concurrently=True)


def downgrade():
    op.drop_index("ix_refresh_tokens_expires_at", table_name="refresh_tokens")
    drop_processed_events_index(op)
