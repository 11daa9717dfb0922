"""shipped rules: what the seed installed, to upgrade the unchanged ones

Revision ID: 0004s
Revises: 0003
Create Date: 2026-12-03 17:45:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0004s'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty at first: the next seed fills it, taking a shipped rule still at the version 1 it
    # installed (nobody's edit) as unchanged.
    op.create_table(
        'shipped_rules',
        sa.Column('key', sa.String(length=100), nullable=False),
        sa.Column('rule_id', sa.String(length=36), nullable=False),
        sa.Column('installed_version', sa.Integer(), nullable=False),
        sa.Column('installed_hash', sa.String(length=64), nullable=False),
        sa.Column('shipped', sa.JSON(), nullable=False),
        sa.Column('shipped_hash', sa.String(length=64), nullable=False),
        sa.Column('update_available', sa.Boolean(), nullable=False),
        sa.Column('checked_at', shared.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_shipped_rules')),
    )


def downgrade() -> None:
    op.drop_table('shipped_rules')
