"""retention: the indexes the worker forgets old rows by (processed-event records; mails sent or given up
more than MAIL_RETENTION_DAYS ago)"""

import sqlalchemy as sa
from alembic import op

from servicekit.db import create_index_concurrently, create_processed_events_index, drop_processed_events_index

revision = "0010_retention"
down_revision = "0009_user_quota_index"

# (name, column): partial, so a mail still to send is in neither.
INDEXES = (("ix_outgoing_emails_sent_at", "sent_at"), ("ix_outgoing_emails_failed_at", "failed_at"))


def upgrade():
    create_processed_events_index(op)
    for name, column in INDEXES:
        create_index_concurrently(op, name, "outgoing_emails", [column], postgresql_where=sa.text(f"{column} IS NOT NULL"))


def downgrade():
    for name, _column in INDEXES:
        op.drop_index(name, table_name="outgoing_emails")
    drop_processed_events_index(op)
