"""The audit log; experiments.owner and archived_at; exposures and events by
received_at (the "new data since the snapshot" check).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import experiments.storage.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = (
    "'create', 'edit', 'start', 'ramp', 'stop', 'restart', 'archive', 'conclude', 'promote',"
    " 'unpromote', 'key_create', 'key_revoke', 'user_create', 'user_disable'"
)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", experiments.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=254), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.CheckConstraint(f"action IN ({ACTIONS})", name=op.f("ck_audit_log_action_known")),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_audit_log_experiment_id_experiments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_log_experiment_id_id", ["experiment_id", "id"], unique=False
        )

    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=254), nullable=True))
        batch_op.add_column(
            sa.Column(
                "archived_at", experiments.storage.base.UTCDateTime(timezone=True), nullable=True
            )
        )

    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exposures_experiment_id_received_at",
            ["experiment_id", "received_at"],
            unique=False,
        )
    op.create_index("ix_events_received_at", "events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_events_received_at", table_name="events")
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.drop_index("ix_exposures_experiment_id_received_at")

    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
        batch_op.drop_column("owner")

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_experiment_id_id")
    op.drop_table("audit_log")
