"""token generations on users; the auth_throttles table (lockout and failed-auth throttling)

Revision ID: 0003_auth_hardening
Revises: 0002_outbox
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_auth_hardening"
down_revision: str | None = "0002_outbox"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Existing rows start at generation 0, which tokens issued before this change also carry.
    op.add_column(
        "users",
        sa.Column("token_generation", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "users", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "auth_throttles",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started", sa.Float(), nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_auth_throttles")),
    )
    op.create_index(
        op.f("ix_auth_throttles_window_started"), "auth_throttles", ["window_started"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_throttles_window_started"), table_name="auth_throttles")
    op.drop_table("auth_throttles")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_changed_at")
        batch.drop_column("token_generation")
