"""Accounts and roles: users.role (from is_admin), disabled_at, last_login_at;
the login_attempts table the login rate limit counts; api_keys.last_used_at.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import experiments.storage.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", experiments.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_address_at", ["address", "at"], unique=False)
        batch_op.create_index("ix_login_attempts_email_at", ["email", "at"], unique=False)

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_used_at", experiments.storage.base.UTCDateTime(timezone=True), nullable=True
            )
        )

    # Existing users keep what they could do: is_admin becomes the admin role,
    # everyone else an editor (before roles, every user could change everything
    # but promotions were not guarded: editor is the closest without admin rights).
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="viewer")
        )
        batch_op.add_column(
            sa.Column(
                "disabled_at", experiments.storage.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_login_at", experiments.storage.base.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.execute(
        "UPDATE users SET role = CASE WHEN is_admin THEN 'admin' ELSE 'editor' END"
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("role", server_default=None)
        batch_op.create_check_constraint(
            op.f("ck_users_role_known"), "role IN ('viewer', 'editor', 'admin')"
        )
        batch_op.drop_column("is_admin")


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE users SET is_admin = (role = 'admin')")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("is_admin", server_default=None)
        batch_op.drop_constraint(op.f("ck_users_role_known"), type_="check")
        batch_op.drop_column("last_login_at")
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("role")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")

    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_email_at")
        batch_op.drop_index("ix_login_attempts_address_at")
    op.drop_table("login_attempts")
