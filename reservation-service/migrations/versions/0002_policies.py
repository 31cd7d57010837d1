"""room read model: time zone, booking policy, equipment; blackouts"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_policies"
down_revision = "0001"


def upgrade():
    op.add_column("room_replicas", sa.Column("timezone", sa.String(64), server_default="UTC", nullable=False))
    op.add_column("room_replicas", sa.Column("booking_policy", postgresql.JSONB()))
    op.add_column(
        "room_replicas", sa.Column("equipment", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False)
    )
    op.create_table(
        "blackouts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("room_id", sa.BigInteger()),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("during", postgresql.TSTZRANGE(), sa.Computed("tstzrange(start_time, end_time, '[)')", persisted=True)),
        sa.CheckConstraint("end_time > start_time", name="ck_blackouts_ends_after_start"),
        sa.PrimaryKeyConstraint("id", name="pk_blackouts"),
    )
    # btree_gist (from 0001) lets room_id share the GiST index with the range.
    op.create_index("ix_blackouts_room_id_during", "blackouts", ["room_id", "during"], postgresql_using="gist")


def downgrade():
    op.drop_index("ix_blackouts_room_id_during", table_name="blackouts")
    op.drop_table("blackouts")
    op.drop_column("room_replicas", "equipment")
    op.drop_column("room_replicas", "booking_policy")
    op.drop_column("room_replicas", "timezone")
