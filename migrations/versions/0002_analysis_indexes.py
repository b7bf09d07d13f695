"""Indexes for planning (events by time) and ML metrics by model.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 11:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_timestamp", "events", ["timestamp"])
    op.create_index(
        "ix_predictions_experiment_id_model", "predictions", ["experiment_id", "model"]
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_experiment_id_model", table_name="predictions")
    op.drop_index("ix_events_timestamp", table_name="events")
