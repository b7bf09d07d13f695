"""The config version row: one indexed read per request tells a worker its cache is fresh.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_config_version_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_version")),
    )
    op.execute("INSERT INTO config_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("config_version")
