"""calendar feeds: reservations.sequence (iCalendar SEQUENCE), calendar_tokens, the calendar part of queued mail"""

import sqlalchemy as sa
from alembic import op

revision = "0004_calendar"
down_revision = "0003_list_indexes"


def upgrade():
    op.add_column("reservations", sa.Column("sequence", sa.Integer(), server_default="0", nullable=False))
    op.add_column("outgoing_emails", sa.Column("calendar", sa.Text()))
    op.create_table(
        "calendar_tokens",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_calendar_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_calendar_tokens_token_hash"),
    )
    op.create_index("ix_calendar_tokens_user_id", "calendar_tokens", ["user_id"])


def downgrade():
    op.drop_table("calendar_tokens")
    op.drop_column("outgoing_emails", "calendar")
    op.drop_column("reservations", "sequence")
