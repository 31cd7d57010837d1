"""auth throttles per account and client (replacing the per-e-mail lockout)"""

import sqlalchemy as sa
from alembic import op

revision = "0002_security"
down_revision = "0001"


def upgrade():
    op.create_table(
        "auth_throttles",
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("account", sa.String(320), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", "account", "client", name="pk_auth_throttles"),
    )
    op.create_index("ix_auth_throttles_updated_at", "auth_throttles", ["updated_at"])
    op.drop_table("login_attempts")


def downgrade():
    op.create_table(
        "login_attempts",
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("email", name="pk_login_attempts"),
    )
    op.drop_index("ix_auth_throttles_updated_at", table_name="auth_throttles")
    op.drop_table("auth_throttles")
